"""Synthesise assets/demo.wav: an 8 second stereo groove for trying VampBridge without media.

Four bars at 120 BPM, 44.1 kHz, 24-bit: kick, snare, hi-hats, a bass line and chords
(Am7 - Fmaj7 - Cmaj7 - G6), made from sine waves, band-limited saws and seeded noise with numpy,
shaped and mixed with pedalboard effects. Everything is deterministic: running the script again
writes the same file.

The groove is rendered twice in a row and the second pass is kept, so reverb and delay tails from
the end of the loop carry into its start and the file loops without a click.

Usage (from the repository root):  python assets/make_demo.py [output.wav]
"""

import sys
from pathlib import Path

import numpy as np
import pedalboard as pb
from pedalboard.io import AudioFile

SAMPLE_RATE = 44100
BPM = 120
BARS = 4
SEED = 20240611
STEP_S = 60.0 / BPM / 4  # one sixteenth note, in seconds
STEPS_PER_BAR = 16
LOOP_S = BARS * STEPS_PER_BAR * STEP_S  # 8.0 s
PEAK_DBFS = -1.0
OUTPUT = Path(__file__).with_name("demo.wav")

# One chord per bar as MIDI notes, and the bass root for that bar.
CHORDS = [[57, 60, 64, 67], [53, 57, 60, 64], [55, 60, 64, 71], [55, 59, 62, 64]]
BASS_ROOTS = [45, 41, 36, 43]  # A2, F2, C2, G2
# Sixteenth-note grids for one bar ("x" = hit). The kick adds a push into beat 3 on bar 2 and 4.
KICK = ["x.........x.....", "x.........x...x.", "x.........x.....", "x.....x...x...x."]
SNARE = "....x.......x..."
HATS = "x.x.x.x.x.x.x.xx"
BASS = "x..x..x.x.x..x.."


def midi_to_hz(note):
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def seconds(n_s):
    return int(round(n_s * SAMPLE_RATE))


def time_axis(length_s):
    return np.arange(seconds(length_s)) / SAMPLE_RATE


def saw(freq_hz, length_s, phase=0.0):
    """Band-limited sawtooth (harmonics below 16 kHz), peak about 1."""
    t = time_axis(length_s)
    n_harmonics = max(1, int(16000 / freq_hz))
    wave = np.zeros_like(t)
    for k in range(1, n_harmonics + 1):
        wave += np.sin(2 * np.pi * k * freq_hz * t + k * phase) / k
    return wave * (2 / np.pi)


def envelope(length_s, attack_s, decay_s):
    """Linear attack, then exponential decay with time constant `decay_s`."""
    t = time_axis(length_s)
    attack = np.clip(t / max(attack_s, 1e-6), 0, 1)
    return attack * np.exp(-np.maximum(t - attack_s, 0) / decay_s)


# --- instruments: each returns a mono hit or note --------------------------------------------

def kick():
    t = time_axis(0.45)
    pitch_hz = 48 + 110 * np.exp(-t / 0.035)  # fast downward sweep gives the punch
    phase = 2 * np.pi * np.cumsum(pitch_hz) / SAMPLE_RATE
    click = np.exp(-t / 0.002) * 0.3
    return (np.sin(phase) + click) * envelope(0.45, 0.001, 0.16)


def snare(rng):
    t = time_axis(0.3)
    body = np.sin(2 * np.pi * 185 * t) * envelope(0.3, 0.001, 0.05)
    noise = rng.standard_normal(t.size) * envelope(0.3, 0.001, 0.055)
    noise = pb.Pedalboard([pb.HighpassFilter(900), pb.PeakFilter(3500, 4.0, 1.0)])(
        noise.astype(np.float32), SAMPLE_RATE
    )
    return 0.7 * body + 0.5 * noise


def hat(rng, open_hat=False):
    length_s = 0.35 if open_hat else 0.06
    noise = rng.standard_normal(seconds(length_s)) * envelope(length_s, 0.0005, length_s / 4)
    return pb.Pedalboard([pb.HighpassFilter(7000), pb.HighpassFilter(7000)])(
        noise.astype(np.float32), SAMPLE_RATE
    )


def bass_note(note, length_s):
    tone = 0.6 * saw(midi_to_hz(note), length_s) + 0.5 * np.sin(
        2 * np.pi * midi_to_hz(note) * time_axis(length_s)
    )
    return tone * envelope(length_s, 0.004, 0.25)


def chord(notes, length_s, detune_cents):
    """Two slightly detuned saws per note; different detune per channel makes it wide."""
    total = np.zeros(seconds(length_s))
    for index, note in enumerate(notes):
        for cents in (-detune_cents, detune_cents):
            total += saw(midi_to_hz(note) * 2 ** (cents / 1200), length_s, phase=0.7 * index)
    fade = envelope(length_s, 0.03, 1.6)
    return total * fade / (2 * len(notes))


# --- arrangement ---------------------------------------------------------------------------

def place(track, sound, start_s, gain=1.0):
    """Add `sound` into `track` at `start_s` (clipped at the track's end)."""
    start = seconds(start_s)
    end = min(track.size, start + sound.size)
    track[start:end] += gain * sound[: end - start]


def drum_tracks(rng, n_loops):
    length = seconds(LOOP_S * n_loops) + seconds(1.0)
    kicks, snares, hats = (np.zeros(length) for _ in range(3))
    kick_sound = kick()
    for loop in range(n_loops):
        for bar in range(BARS):
            bar_s = (loop * BARS + bar) * STEPS_PER_BAR * STEP_S
            for step in range(STEPS_PER_BAR):
                at_s = bar_s + step * STEP_S
                if KICK[bar][step] == "x":
                    place(kicks, kick_sound, at_s, 1.0)
                if SNARE[step] == "x":
                    place(snares, snare(rng), at_s, 0.4)
                if HATS[step] == "x":
                    is_open = bar == BARS - 1 and step == 14
                    accent = 0.35 if step % 4 == 0 else 0.22
                    swing_s = 0.012 if step % 4 == 2 else 0.0
                    place(hats, hat(rng, is_open), at_s + swing_s, accent * (1 + 0.1 * rng.standard_normal()))
    return kicks, snares, hats


def bass_track(n_loops):
    track = np.zeros(seconds(LOOP_S * n_loops) + seconds(1.0))
    for loop in range(n_loops):
        for bar in range(BARS):
            bar_s = (loop * BARS + bar) * STEPS_PER_BAR * STEP_S
            for step in range(STEPS_PER_BAR):
                if BASS[step] == "x":
                    octave_up = 12 if step == 10 else 0
                    place(track, bass_note(BASS_ROOTS[bar] + octave_up, 2.5 * STEP_S), bar_s + step * STEP_S, 0.5)
    filtered = pb.Pedalboard([
        pb.LadderFilter(pb.LadderFilter.Mode.LPF24, cutoff_hz=700, resonance=0.25, drive=1.3),
        pb.Compressor(threshold_db=-16, ratio=4, attack_ms=5, release_ms=80),
    ])
    return filtered(track.astype(np.float32), SAMPLE_RATE)


def chord_tracks(n_loops):
    """Left and right chord tracks: stabs on the 'and' of beats 2 and 4, plus a held pad."""
    length = seconds(LOOP_S * n_loops) + seconds(1.0)
    left, right = np.zeros(length), np.zeros(length)
    bar_s_len = STEPS_PER_BAR * STEP_S
    for loop in range(n_loops):
        for bar in range(BARS):
            bar_s = (loop * BARS + bar) * bar_s_len
            pad_l, pad_r = chord(CHORDS[bar], bar_s_len, 6), chord(CHORDS[bar], bar_s_len, 9)
            place(left, pad_l, bar_s, 0.35)
            place(right, pad_r, bar_s, 0.35)
            for step in (6, 14):
                stab = chord([n + 12 for n in CHORDS[bar]], 1.5 * STEP_S, 4)
                stab *= envelope(1.5 * STEP_S, 0.002, 0.08)
                place(left, stab, bar_s + step * STEP_S, 0.45)
                place(right, stab, bar_s + step * STEP_S, 0.45)
    treatment = pb.Pedalboard([
        pb.LowpassFilter(2800),
        pb.HighpassFilter(180),
        pb.Chorus(rate_hz=0.5, depth=0.2, mix=0.3),
        pb.Reverb(room_size=0.7, damping=0.5, wet_level=0.3, dry_level=0.5, width=1.0),
    ])
    return treatment(np.vstack([left, right]).astype(np.float32), SAMPLE_RATE)


def pan(mono, position):
    """Constant-power pan: position -1 (left) .. +1 (right); returns (2, n)."""
    angle = (position + 1) * np.pi / 4
    return np.vstack([np.cos(angle) * mono, np.sin(angle) * mono])


def render_groove():
    """The stereo groove, (2, LOOP_S * SAMPLE_RATE) float32, peak at PEAK_DBFS."""
    rng = np.random.default_rng(SEED)
    n_loops = 2
    kicks, snares, hats = drum_tracks(rng, n_loops)
    snares = pb.Pedalboard([pb.Reverb(room_size=0.3, wet_level=0.1, dry_level=0.5)])(
        pan(snares, 0.0).astype(np.float32), SAMPLE_RATE
    )
    mix = pan(kicks, 0.0) + snares + pan(hats, 0.35) + pan(bass_track(n_loops), 0.0)
    mix = mix + chord_tracks(n_loops)
    master = pb.Pedalboard([
        pb.Compressor(threshold_db=-14, ratio=2, attack_ms=20, release_ms=150),
        pb.Limiter(threshold_db=-2, release_ms=100),
    ])
    mix = master(mix.astype(np.float32), SAMPLE_RATE)
    loop = mix[:, seconds(LOOP_S): 2 * seconds(LOOP_S)]  # second pass: tails wrap around
    loop = loop * (10 ** (PEAK_DBFS / 20) / np.max(np.abs(loop)))
    return loop.astype(np.float32)


def main(argv):
    output = Path(argv[1]) if len(argv) > 1 else OUTPUT
    audio = render_groove()
    with AudioFile(str(output), "w", samplerate=SAMPLE_RATE, num_channels=2, bit_depth=24) as f:
        f.write(audio)
    print(f"wrote {output}: {audio.shape[1] / SAMPLE_RATE:.2f} s, {audio.shape[0]} channels, "
          f"{SAMPLE_RATE} Hz, 24-bit")


if __name__ == "__main__":
    main(sys.argv)
