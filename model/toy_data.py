"""Small deterministic toy training set in the ``model.data`` folder format.

``python -m model.toy_data --out benchmark_data/toy_train`` writes a few clips. Identities come from the
iap-mini media pack when present (``benchmark_data/iap-mini/pack``: one folder per identity with face
images and a voice wav), else they are synthetic: a drawn face (skin, hair, eye colours per identity) and a
harmonic "voice" (pitch and formant per identity). Each clip shows its subjects with mouths opening with
their speech envelope; the reference voice is a different utterance than the clip's audio, as the paper's
cross-clip matching requires. Everything is seeded, so two runs write identical media.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.caption import CaptionSpec, SubjectText, spec_to_dict
from model.data import ClipRecord, ClipShape, SubjectRecord, read_image, read_wave, write_index

SR = 16_000
MINI_PACK = Path("benchmark_data/iap-mini/pack")


@dataclass(frozen=True)
class ToyIdentity:
    """A synthetic or pack identity: name, face views [H,W,3] uint8 and a voice recipe or clip."""

    name: str
    faces: tuple[np.ndarray, ...]
    pitch: float
    formant: float
    voice: np.ndarray | None = None  # a real voice clip (pack) instead of the synthetic recipe
    description: str = ""


def draw_face(size: int, skin: tuple[int, int, int], hair: tuple[int, int, int], eyes: tuple[int, int, int],
              mouth_open: float = 0.1, dx: float = 0.0, bg: tuple[int, int, int] = (40, 60, 90)) -> np.ndarray:
    """A simple frontal face [size,size,3] uint8: head ellipse, hair cap, two eyes, a mouth of given opening."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.empty((size, size, 3), np.float32)
    img[:] = bg
    cx, cy = 0.5 + dx, 0.52
    head = ((xx - cx) / 0.30) ** 2 + ((yy - cy) / 0.38) ** 2 <= 1
    img[head] = skin
    cap = head & (yy < cy - 0.18)
    img[cap] = hair
    for ex in (cx - 0.11, cx + 0.11):
        img[((xx - ex) / 0.045) ** 2 + ((yy - (cy - 0.06)) / 0.03) ** 2 <= 1] = eyes
    h = 0.015 + 0.07 * float(np.clip(mouth_open, 0, 1))
    img[((xx - cx) / 0.10) ** 2 + ((yy - (cy + 0.2)) / h) ** 2 <= 1] = (90, 20, 30)
    return img.clip(0, 255).astype(np.uint8)


def synth_voice(pitch: float, formant: float, seconds: float, seed: int) -> np.ndarray:
    """A harmonic 'voice': glottal-like harmonics shaped by one formant, in syllables of random length."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    vib = 1 + 0.02 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(pitch * vib) / SR
    wave = np.zeros(n)
    for k in range(1, 16):
        amp = np.exp(-((k * pitch - formant) / 500.0) ** 2) + 0.15 / k
        wave += amp * np.sin(k * phase)
    env = np.zeros(n)
    pos = 0
    while pos < n:
        syl = int(rng.uniform(0.08, 0.2) * SR)
        gap = int(rng.uniform(0.02, 0.08) * SR)
        seg = np.hanning(min(syl, n - pos)) if min(syl, n - pos) > 1 else np.ones(1)
        env[pos: pos + seg.size] = seg * rng.uniform(0.6, 1.0)
        pos += syl + gap
    wave = wave * env
    return (0.5 * wave / (np.abs(wave).max() + 1e-9)).astype(np.float32)


def envelope(wave: np.ndarray, frames: int) -> np.ndarray:
    """Per-frame RMS envelope in [0,1] (drives the mouth opening)."""
    chunks = np.array_split(wave, frames)
    e = np.array([np.sqrt(np.mean(c ** 2)) if c.size else 0.0 for c in chunks])
    return e / (e.max() + 1e-9)


SKINS = [(224, 172, 140), (170, 120, 90), (240, 200, 170), (120, 80, 60)]
HAIRS = [(30, 20, 10), (200, 160, 60), (120, 40, 20), (220, 220, 220)]
EYES = [(40, 90, 160), (60, 40, 20), (40, 120, 60), (20, 20, 20)]
PITCH = [110.0, 210.0, 150.0, 260.0]
FORMANT = [700.0, 1200.0, 900.0, 1500.0]
DESCR = ["a man with dark hair", "a woman with blond hair", "a man with red hair", "a woman with white hair"]


def synthetic_identities(n: int, size: int, views: int) -> list[ToyIdentity]:
    """n drawn identities; extra views are the same face shifted sideways (a stand-in for head pose)."""
    out = []
    for i in range(n):
        faces = tuple(draw_face(size, SKINS[i % 4], HAIRS[i % 4], EYES[i % 4], 0.1, dx=0.06 * v * (-1) ** v)
                      for v in range(views))
        out.append(ToyIdentity(f"toy_id{i + 1}", faces, PITCH[i % 4], FORMANT[i % 4], None, DESCR[i % 4]))
    return out


def pack_identities(pack: Path, n: int, views: int) -> list[ToyIdentity]:
    """Identities from an iap-mini pack (``<id>/faces/*.jpg|png`` + ``<id>/*.wav``); empty if none found."""
    out: list[ToyIdentity] = []
    for d in sorted(p for p in pack.iterdir() if p.is_dir()):
        imgs = sorted(p for p in [*d.glob("*.*"), *d.glob("faces/*.*")] if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        wavs = sorted(d.glob("*.wav"))
        if imgs and wavs:
            faces = tuple(read_image(p) for p in (imgs * views)[:views])
            out.append(ToyIdentity(d.name, faces, 0, 0, read_wave(wavs[0], SR), f"the person {d.name}"))
        if len(out) == n:
            break
    return out


def identity_voice(ident: ToyIdentity, seconds: float, seed: int) -> np.ndarray:
    """A voice clip of the identity: a window of its real clip, or a fresh synthetic utterance."""
    n = int(seconds * SR)
    if ident.voice is not None:
        start = (seed * 997) % max(1, ident.voice.size - n) if ident.voice.size > n else 0
        v = ident.voice[start: start + n]
        return np.pad(v, (0, n - v.size)).astype(np.float32)
    return synth_voice(ident.pitch, ident.formant, seconds, seed)


def compose_frame(idents: list[ToyIdentity], mouths: list[float], size: int, from_pack: bool) -> np.ndarray:
    """One frame: subjects side by side (each in a square cell), mouth opening per subject."""
    cells = []
    for ident, m in zip(idents, mouths):
        if from_pack:
            face = ident.faces[0].copy()
            from PIL import Image

            face = np.asarray(Image.fromarray(face).resize((size, size)))
            lo = int(size * (0.72 - 0.05 * m))
            face = face.copy()
            face[lo: int(size * 0.78), int(size * 0.4): int(size * 0.6)] = (90, 20, 30)
            cells.append(face)
        else:
            i = int(ident.name.removeprefix("toy_id")) - 1
            cells.append(draw_face(size, SKINS[i % 4], HAIRS[i % 4], EYES[i % 4], m))
    row = np.concatenate(cells, axis=1)
    if row.shape[1] != size:  # back to a square frame
        from PIL import Image

        row = np.asarray(Image.fromarray(row).resize((size, size)))
    return row


def write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 yuv420p mp4 (video only; the clip's audio is a separate wav in this format)."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = {"crf": "18", "preset": "veryfast"}
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def write_wav(path: Path, wave: np.ndarray) -> None:
    import soundfile as sf

    sf.write(str(path), wave, SR, subtype="PCM_16")


def make_toy_set(out: str | Path, n_clips: int = 8, shape: ClipShape | None = None, n_identities: int = 4,
                 views: int = 2, pack: Path | None = None, seed: int = 0) -> Path:
    """Write clips, references and index.jsonl under ``out``; returns the index path."""
    shape = shape or ClipShape()
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    (out / "refs").mkdir(parents=True, exist_ok=True)
    pack = MINI_PACK if pack is None else pack
    idents = pack_identities(pack, n_identities, views) if pack.is_dir() else []
    from_pack = len(idents) >= 2
    if not from_pack:
        idents = synthetic_identities(n_identities, shape.height, views)
    ref_seconds = shape.ref_audio_samples / SR + 0.5
    for ident in idents:
        for v, face in enumerate(ident.faces):
            _save_image(out / "refs" / f"{ident.name}_view{v}.jpg", face, max_side=2 * max(shape.height, shape.width))
        write_wav(out / "refs" / f"{ident.name}_voice.wav", identity_voice(ident, ref_seconds, seed=1000))
    rng = np.random.default_rng(seed)
    records = []
    seconds = shape.audio_samples / SR
    for c in range(n_clips):
        k = 1 if c % 3 else 2
        chosen = [idents[int(j)] for j in rng.choice(len(idents), size=k, replace=False)]
        voices = [identity_voice(ident, seconds, seed=seed * 100 + c * 7 + j) for j, ident in enumerate(chosen)]
        speaker = c % k
        audio = voices[speaker]
        env = envelope(audio, shape.frames)
        frames = np.stack([compose_frame(chosen, [env[f] if j == speaker else 0.1 for j in range(k)],
                                         shape.height, from_pack) for f in range(shape.frames)])
        cid = f"clip{c:03d}"
        write_mp4(out / "clips" / f"{cid}.mp4", frames, shape.fps)
        write_wav(out / "clips" / f"{cid}.wav", audio)
        spec = CaptionSpec(
            scene="A plain studio with a blue backdrop", camera="static medium close-up",
            subjects=tuple(SubjectText(j + 1, ident.description, "faces the camera",
                                       "talking" if j == speaker else "listening") for j, ident in enumerate(chosen)),
            script=((speaker + 1, f"toy line number {c}"),), ambience="quiet room tone")
        subs = [SubjectRecord(j + 1, ident.name, [f"refs/{ident.name}_view{v}.jpg" for v in range(len(ident.faces))],
                              f"refs/{ident.name}_voice.wav") for j, ident in enumerate(chosen)]
        records.append(ClipRecord(cid, f"clips/{cid}.mp4", f"clips/{cid}.wav", subs, spec_to_dict(spec), shape.fps))
    return write_index(out, records)


def _save_image(path: Path, img: np.ndarray, max_side: int = 256) -> None:
    """JPEG (quality 92), downscaled so the longest side is at most ``max_side`` (keeps the toy set small)."""
    from PIL import Image

    im = Image.fromarray(img)
    im.thumbnail((max_side, max_side))
    im.save(path, quality=92)


def main(argv: list[str] | None = None) -> None:
    """CLI: write the toy set."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmark_data/toy_train")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--fps", type=float, default=16.0)
    ap.add_argument("--audio-latents", type=int, default=16)
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    shape = ClipShape(height=a.size, width=a.size, frames=a.frames, fps=a.fps, audio_samples=a.audio_latents * 512)
    path = make_toy_set(a.out, a.clips, shape, views=a.views, seed=a.seed)
    size = sum(p.stat().st_size for p in Path(a.out).rglob("*") if p.is_file())
    print(f"wrote {path} ({a.clips} clips, {size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
