"""A masking study in the style of VampNet's own notebooks, through the reference's names.

Only the import differs from code written for VampNet (`import vampnet`). Runs on whatever
`Interface.default()` finds: the installed released weights, else the bundled untrained ones
(then the output is noise-like, but every number below is still meaningful: how much of the
token grid each prompt regenerates, and that kept tokens never change).

    python docs/examples/masking_study.py      # writes summary.json and codes.png to $MASKING_STUDY_OUT

Studies: density (how much is regenerated), patterns (inpainting, onsets, beats, dropout,
compression), periodic prompts, codebook depth, and the seed notebooks' presets.
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from audiotools import AudioSignal

import bridge.engine as vampnet

# %% Load the model and a clip: a decaying tone with a click on every beat (120 BPM), 2 s
interface = vampnet.interface.Interface.default()
interface.eval()
sr = 44100
t = np.arange(2 * sr) / sr
audio = 0.3 * np.exp(-6 * (t % 0.5)) * np.sin(2 * np.pi * 220 * t)
for beat_s in np.arange(0.0, 2.0, 0.5):
    start = int(beat_s * sr)
    audio[start:start + 200] += np.hanning(200)
signal = AudioSignal(audio.astype(np.float32)[None, None], sr)
z = interface.encode(signal)  # (1, 14, T)
MASK = interface.coarse.mask_token
N_COARSE = interface.coarse.n_codebooks


# %% One helper: vamp under a mask and measure it
def run(mask, seed=0, **settings):
    zv, mask_z = interface.vamp(z, mask, return_mask=True, seed=seed, sampling_steps=4)
    regenerated = mask_z[:, :N_COARSE] == MASK  # what the coarse model was asked to fill
    kept = ~regenerated
    out = interface.decode(zv)
    return {**settings,
            "masked_fraction": float(regenerated.float().mean()),
            "changed_fraction": float((zv[:, :N_COARSE] != z[:, :N_COARSE]).float().mean()),
            "kept_cells_unchanged": bool(torch.equal(zv[:, :N_COARSE][kept], z[:, :N_COARSE][kept])),
            "frames": int(z.shape[-1]), "samples": int(out.audio_data.shape[-1])}


results = {}

# %% Density: the random prompt's intensity, no periodic prompt, every coarse codebook in play
results["density"] = [
    run(interface.build_mask(z, signal, rand_mask_intensity=r, periodic_prompt=0, upper_codebook_mask=4, seed=1),
        rand_mask_intensity=r)
    for r in (0.1, 0.3, 0.5, 0.7, 0.9)
]

# %% Patterns: the reference's mask functions, tensors in and out
m = vampnet.mask
full = m.full_mask(z)
patterns = {
    "inpaint": m.inpaint(z, interface.s2t(0.5), interface.s2t(0.5)),
    "onsets": m.onset_mask(signal, z, interface, width=2),
    "beats": interface.make_beat_mask(signal, before_beat_s=0.0, after_beat_s=0.075),
    "dropout": m.dropout(m.periodic_mask(z, 7, 1), 0.3),
    "compression": m.codebook_unmask(full, 2),
}
results["patterns"] = [run(m.codebook_mask(mask, 3), pattern=name) for name, mask in patterns.items()]

# %% Periodic prompts: keep every P-th frame
results["periodic"] = [
    run(m.codebook_mask(m.periodic_mask(z, period, 1, random_roll=True), 3), periodic_prompt=period)
    for period in (3, 7, 13)
]

# %% Codebook depth: codebooks >= k are always regenerated
results["codebook_depth"] = [
    run(interface.build_mask(z, signal, rand_mask_intensity=0.5, periodic_prompt=7, upper_codebook_mask=k, seed=2),
        upper_codebook_mask=k)
    for k in (1, 2, 4)
]

# %% The seed notebooks' presets
presets = {"subtle": (0.3, 7, 2), "balanced": (0.5, 7, 3), "creative": (0.7, 10, 4)}
results["presets"] = [
    run(interface.build_mask(z, signal, rand_mask_intensity=r, periodic_prompt=p, upper_codebook_mask=d, seed=3),
        preset=name)
    for name, (r, p, d) in presets.items()
] + [run(interface.make_beat_mask(signal, after_beat_s=0.075), preset="rhythm")]

# %% Save a summary and a picture of one prompt's grid
out_dir = Path(os.environ.get("MASKING_STUDY_OUT") or tempfile.mkdtemp(prefix="masking-study-"))
out_dir.mkdir(parents=True, exist_ok=True)
(out_dir / "summary.json").write_text(json.dumps(results, indent=2))
balanced = interface.build_mask(z, signal, rand_mask_intensity=0.5, periodic_prompt=7, upper_codebook_mask=3, seed=3)
interface.visualize_codes(m.apply_mask(z, balanced, MASK)[0], mask=balanced).savefig(out_dir / "codes.png")

if __name__ == "__main__":
    for study, rows in results.items():
        print(study)
        for row in rows:
            label = {k: v for k, v in row.items() if k not in ("masked_fraction", "changed_fraction",
                                                              "kept_cells_unchanged", "frames", "samples")}
            print(f"  {label}: regenerated {row['masked_fraction']:.0%}, changed {row['changed_fraction']:.0%}")
    print(f"wrote {out_dir}")
