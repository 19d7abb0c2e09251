"""Self-contained HTML reports: inline CSS and JS, links relative to the report's folder, no server."""

import base64
import json
from html import escape

from .metrics import FRAME_RATE_HZ, MEL_FLOOR, MEL_HOP, N_FFT, N_MELS

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; } h3 { font-size: 1em; margin-bottom: 0.3em; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; display: block; } audio { width: 100%; max-width: 520px; }
.setting { border-top: 1px solid #ddd; padding-top: 0.4em; }
.summary { display: flex; flex-wrap: wrap; gap: 1em; } .summary img { max-width: 540px; }
.note { color: #555; font-size: 0.85em; } code { background: #f4f4f4; padding: 0 3px; }
"""


def _page(title: str, body: str, script: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n"
            + (f"<script>{script}</script>" if script else "") + "</body></html>\n")


def _audio(src: str) -> str:
    return f'<audio controls preload="none" src="{escape(src)}"></audio>'


def _img(src: str, alt: str) -> str:
    return f'<img src="{escape(src)}" alt="{escape(alt)}" loading="lazy">'


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _duration(seconds: float, n_frames: int) -> str:
    return f"{seconds:.2f} s ({n_frames} token frames)"


DEFINITIONS = f"""
<h2>What the numbers mean</h2>
<ul class="note">
<li><b>masked</b>: share of token cells whose mask is 1 (regenerated), as the model saw it (including the
first and last frame of each 10 s coarse chunk, which the engine keeps when the chunk keeps anything);
over the coarse codebooks 0-3 (what the prompt decides) and over all 14 codebooks.</li>
<li><b>changed</b>: share of token cells whose final token differs from the original clip's token
(a regenerated cell may come back unchanged).</li>
<li><b>mel distance</b>: both signals preprocessed like the engine's input (44.1 kHz, mono, -24 LUFS);
log-mel spectrograms with {N_MELS} HTK-mel bands from 0 Hz to 22.05 kHz, {N_FFT}-sample periodic Hann
frames every {MEL_HOP} samples (centred), magnitude divided by the window sum,
20&middot;log10(max(mel, {MEL_FLOOR:g})); the distance is the mean absolute difference in dB over
bands and frames. The codec round trip (original tokens decoded unchanged) is the floor a
variation can reach.</li>
<li><b>seconds</b>: the variation's recorded encode + generate + decode + render time (its recipe's
<code>timings</code>); <b>generate</b> is the sampling alone.</li>
<li>Token frames: 44100 / 768 = {FRAME_RATE_HZ} per second.</li>
</ul>
"""


def study_page(doc: dict) -> str:
    rows = doc["settings"]
    source = doc["input"]
    title = f"Masking study: {doc['study']}"
    sampling = ", ".join(f"{k} {v}" for k, v in doc["sampling"].items())
    if doc["study"] == "patterns":
        fixed = (f"each pattern alone, regenerating about {doc['pattern_density']:.0%} of the frames, "
                 "upper_codebook_mask 3, temperature 1.0, typical filtering on")
    elif doc["study"] == "presets":
        fixed = "each preset as defined, temperature 1.0, typical filtering on"
    else:
        fixed = ("everything else fixed: random intensity 1.0, periodic prompt 7, upper_codebook_mask 3, "
                 "temperature 1.0, typical filtering on (except the swept one)")
    parts = [
        f"<h1>{escape(title)}</h1>",
        f"<p>Clip <code>{escape(source['path'])}</code> from {source['start_s']:.2f} s, "
        f"{_duration(source['duration_s'], source['n_frames'])}. Swept: <b>{escape(doc['parameter'])}</b>; "
        f"{escape(fixed)}. Seed {doc['seed']} for every setting; sampling: {escape(sampling)}; "
        f"device {escape(doc['device'])}.</p>",
        "<h2>Summary</h2><div class=\"summary\">",
        *(_img(src, name) for name, src in doc["summaries"].items()),
        "</div>",
        "<table><tr><th>setting</th><th>masked 0-3</th><th>masked all</th><th>changed 0-3</th><th>changed all</th>"
        "<th>mel distance (dB)</th><th>seconds</th><th>generate (s)</th></tr>",
    ]
    for r in rows:
        parts.append(
            f'<tr data-slug="{escape(r["slug"])}"><td><a href="#{escape(r["slug"])}">{escape(r["label"])}</a></td>'
            f"<td>{_pct(r['masked_coarse'])}</td><td>{_pct(r['masked_all'])}</td>"
            f"<td>{_pct(r['changed_coarse'])}</td><td>{_pct(r['changed_all'])}</td>"
            f"<td>{r['mel_distance_db']:.2f}</td><td>{r['seconds']:.2f}</td><td>{r['generate_s']:.2f}</td></tr>")
    roundtrip = doc["codec_roundtrip"]
    parts += [
        "</table>",
        "<h2>Original</h2>",
        f"<p>After preprocessing (the engine's input): {_audio(doc['original']['audio'])}</p>",
        _img(doc["original"]["spectrogram_png"], "original spectrogram"),
        f"<p>Codec round trip (nothing regenerated), mel distance {roundtrip['mel_distance_db']:.2f} dB: "
        f"{_audio(roundtrip['audio'])}</p>",
        "<h2>Settings</h2>",
    ]
    for r in rows:
        parts += [
            f'<div class="setting" id="{escape(r["slug"])}"><h3>{escape(r["label"])}</h3>',
            f"<p>{_audio(r['audio'])} <a href=\"{escape(r['recipe'])}\">recipe</a> &middot; "
            f"masked {_pct(r['masked_coarse'])} of codebooks 0-3 ({_pct(r['masked_all'])} of all), changed "
            f"{_pct(r['changed_coarse'])} ({_pct(r['changed_all'])}), mel distance {r['mel_distance_db']:.2f} dB, "
            f"{r['seconds']:.2f} s" + (" (made by an earlier run)" if r["reused"] else "") + "</p>",
            f"<p class=\"note\">mask recipe: <code>{escape(json.dumps(r['mask_recipe']))}</code></p>",
            _img(r["mask_png"], f"mask of {r['label']}"),
            _img(r["spectrogram_png"], f"spectrogram of {r['label']}"),
            "</div>",
        ]
    parts += [
        DEFINITIONS,
        f"<p class=\"note\">Data: <a href=\"{escape(doc['masks'])}\">masks.npz</a> (per-setting masks and tokens), "
        "<a href=\"study.json\">study.json</a> (every number above). Formats: docs/formats.md.</p>",
    ]
    return _page(title, "\n".join(parts))


PLAYER_JS = """
const frames = JSON.parse(document.getElementById('frames').textContent);
const image = document.getElementById('frame'), slider = document.getElementById('slider');
const caption = document.getElementById('caption'), button = document.getElementById('play');
let timer = null;
function show(i) {
  slider.value = i; image.src = 'data:image/png;base64,' + frames[i].png; caption.textContent = frames[i].label;
}
function stop() { clearInterval(timer); timer = null; button.textContent = 'play'; }
slider.max = frames.length - 1;
slider.addEventListener('input', () => { stop(); show(+slider.value); });
button.addEventListener('click', () => {
  if (timer) { stop(); return; }
  if (+slider.value >= frames.length - 1) show(0);
  button.textContent = 'pause';
  timer = setInterval(() => {
    const next = +slider.value + 1;
    if (next >= frames.length) { stop(); return; }
    show(next);
  }, 400);
});
show(0);
"""


def trace_page(meta: dict, frames: list, files: dict) -> str:
    """`frames`: [(label, png bytes)] for the animated view; `files`: relative paths to link."""
    sampling = meta["sampling"]
    title = "Generation trace"
    frame_data = [{"label": label, "png": base64.b64encode(png).decode("ascii")} for label, png in frames]
    frame_json = json.dumps(frame_data).replace("</", "<\\/")  # cannot end the script element early
    variations = "".join(
        f"<li>variation {k + 1} (seed {seed}): {_audio(files['audio'][k])} "
        f"<a href=\"{escape(files['strips'][k])}\">strip</a></li>" for k, seed in enumerate(meta["seeds"]))
    body = "\n".join([
        f"<h1>{title}</h1>",
        f"<p>Clip <code>{escape(meta['input']['path'])}</code> from {meta['input']['start_s']:.2f} s, "
        f"{_duration(meta['input']['n_samples'] / meta['sample_rate'], meta['n_frames'])}; "
        f"mask <code>{escape(json.dumps(meta['mask']))}</code>; "
        f"{sampling['sampling_steps']} coarse steps, {sampling['c2f_sampling_steps']} coarse-to-fine steps, "
        f"temperature {sampling['temperature']}; generation took {meta['generate_s']:.2f} s with the trace on.</p>",
        f"<p>Original (preprocessed): {_audio(files['original'])}</p>",
        f"<ul>{variations}</ul>",
        "<h2>The mask filling in (variation 1)</h2>",
        "<p class=\"note\">Black: still masked; red: generated; light grey: kept from the prompt; dark grey: "
        "waiting for the coarse-to-fine stage. Coarse steps fill codebooks 0-3 (below the white line), then "
        "coarse-to-fine steps fill 4-13.</p>",
        '<p><button id="play">play</button> <input id="slider" type="range" min="0" value="0" step="1" '
        'style="width: 60%"> <span id="caption"></span></p>',
        '<img id="frame" alt="mask at the selected step">',
        f'<script type="application/json" id="frames">{frame_json}</script>',
        "<h2>Every step</h2>",
        _img(files["strips"][0], "every step of variation 1, top to bottom"),
        "<h2>Cells still masked after each step</h2>",
        _img(files["schedule"], "masked cells per step and the cosine schedule"),
        f"<p class=\"note\">Data: <a href=\"{escape(files['npz'])}\">trace.npz</a> (layout in docs/formats.md).</p>",
    ])
    return _page(title, body, PLAYER_JS)
