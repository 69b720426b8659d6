"""Test support for ``wer/reference``: a seeded random SenseVoiceSmall folder in the released layout, and
funasr's own per-file scoring path.

The released folder (HF ``FunAudioLLM/SenseVoiceSmall`` @3847d57b = ModelScope ``iic/SenseVoiceSmall``) holds
``config.yaml``, ``configuration.json``, ``model.pt``, ``am.mvn`` and ``chn_jpn_yue_eng_ko_spectok.bpe.model``.
``write_random_weights`` writes the same five files:

- ``config.yaml``: the released text, byte for byte (``config_yaml()`` with the real depth has the released
  sha256 ``f71e239b...``: FunASR ``docs/tutorial/Tables_zh.md`` prints it without its trailing SpecAugLFR
  block, whose values are those of FunASR's LLM-ASR example configs), except the encoder depth: ``num_blocks``
  3 and ``tp_blocks`` 2 instead of 50 and 20 (every layer keeps the released widths: 560 -> 512, 4 heads,
  2048 FFN, FSMN kernel 11), so the model is 16 M parameters (64 MB, built and written in under a second
  once funasr is imported; the import itself takes 20-30 s here) instead of 234 M (936 MB).
- ``configuration.json``: the released text byte for byte (sha256 ``02810a7f...``; same FunASR page): its
  ``file_path_metas`` is how funasr finds the tokenizer and the CMVN file in a local folder.
- ``model.pt``: ``torch.save({"state_dict": ...})`` of funasr's own ``SenseVoiceSmall`` built from that
  config with seeded random weights (funasr's loader also accepts a bare state dict; which of the two the
  release uses could not be checked offline).
- ``am.mvn``: Kaldi nnet text (``<AddShift>`` = minus the mean, ``<Rescale>`` = 1 / std, 560 = 7 LFR frames
  x 80 mel bins), seeded plausible log-mel statistics.
- ``chn_jpn_yue_eng_ko_spectok.bpe.model``: a real sentencepiece BPE model trained here on a small
  English + Chinese corpus, with SenseVoice's rich-transcription tags (``<|en|>``, ``<|NEUTRAL|>``,
  ``<|Speech|>``, ``<|withitn|>``, ...) as user-defined pieces; ``<unk>``/``<s>``/``</s>`` = 0/1/2 as in the
  release (0 is also the CTC blank). Its vocabulary is ~430 pieces, not 25055: funasr sizes the CTC layer from
  the tokenizer, so no config value changes with it.

``package_scores`` is funasr's path as a user runs it: ``AutoModel(model=<folder>)`` and one
``generate(input=<wav path>, language=..., use_itn=True)`` per file (funasr reads the file itself), then the
protocol's text steps (``iap_bench.metrics.wer_sensevoice.hypothesis_text`` and ``text_norm.wer``). Its one
departure from funasr's defaults is ``dither=0.0`` (the fbank front end's dither off): funasr's default 1.0
draws noise from torch's global RNG, so its transcripts change from call to call (with these random weights,
every one of 5 LibriVox clips transcribed twice in one process differed); ``dither=None`` keeps it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from iap_bench.benchmark.schema import Item

ROOT_SUBPATH = "sensevoice/SenseVoiceSmall"
TEST_NUM_BLOCKS, TEST_TP_BLOCKS = 3, 2  # released: 50, 20
BPE_VOCAB = 400  # BPE merges asked of sentencepiece (plus the tags); released vocabulary: 25055

# Rich-transcription tags of the released tokenizer (language, emotion, event, text norm).
TAGS = (
    "<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>", "<|nospeech|>",
    "<|HAPPY|>", "<|SAD|>", "<|ANGRY|>", "<|NEUTRAL|>", "<|FEARFUL|>", "<|DISGUSTED|>", "<|SURPRISED|>",
    "<|EMO_UNKNOWN|>",
    "<|Speech|>", "<|BGM|>", "<|Applause|>", "<|Laughter|>", "<|Cry|>", "<|Sneeze|>", "<|Breath|>",
    "<|Cough|>", "<|Sing|>", "<|Speech_Noise|>", "<|Event_UNK|>", "<|GBG|>",
    "<|withitn|>", "<|woitn|>",
)

# A small training text for the test tokenizer (written for this module).
_CORPUS_EN = (
    "The quick brown fox jumps over the lazy dog near the quiet river bank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We will meet again tomorrow morning at the old station before the train leaves.",
    "My brother keeps a small boat on the lake and sails it every summer.",
    "The garden looks lovely after the rain, doesn't it? Let us have lunch outside.",
    "Every morning I run three laps around the park before breakfast.",
    "She opened the window and listened to the birds singing in the tall trees.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "He said that the meeting had been moved to Thursday at half past four.",
    "Their house stands at the end of a long road lined with old oak trees.",
    "Could you tell me where the nearest library is, please?",
    "The children laughed and played in the snow until the sun went down.",
    "A good book and a cup of tea make a perfect rainy afternoon.",
    "In 1999 the company sold 250 boats and opened 12 new shops.",
)
_CORPUS_ZH = (
    "今天天气很好，我们一起去公园散步吧。",
    "他每天早上六点起床，然后跑步半个小时。",
    "这家饭店的菜很好吃，价格也不贵。",
    "请问去火车站怎么走？",
    "我的妹妹在北京的一所大学学习音乐。",
    "明天下午三点我们在老地方见面。",
    "孩子们在院子里高高兴兴地玩雪。",
    "她打开窗户，听见树上的小鸟在唱歌。",
    "这本书讲的是一个小村子里发生的故事。",
    "下雨以后，花园里的花更漂亮了。",
)


def config_yaml(num_blocks: int = 50, tp_blocks: int = 20) -> str:
    """The released SenseVoiceSmall ``config.yaml`` text with the encoder depth given (50/20 = released)."""
    return _CONFIG_TEMPLATE.replace("{num_blocks}", str(int(num_blocks))).replace("{tp_blocks}", str(int(tp_blocks)))


def configuration_json() -> str:
    """The released ``configuration.json`` text (funasr's map from config keys to the folder's files)."""
    return _CONFIGURATION_JSON


def am_mvn_text(shift: np.ndarray, scale: np.ndarray) -> str:
    """Kaldi nnet CMVN text as released: ``<AddShift>`` (minus the mean) then ``<Rescale>`` (1 / std)."""
    n = len(shift)

    def row(v: np.ndarray) -> str:
        return " ".join(f"{x:.6f}" for x in v)

    return (f"<Nnet>\n<Splice> {n} {n}\n[ 0 ]\n<AddShift> {n} {n}\n<LearnRateCoef> 0 [ {row(shift)} ]\n"
            f"<Rescale> {n} {n}\n<LearnRateCoef> 0 [ {row(scale)} ]\n</Nnet>\n")


def train_bpe(path: Path, vocab: int = BPE_VOCAB) -> int:
    """Train the test tokenizer (sentencepiece BPE, tags as user-defined pieces) to ``path``; its size."""
    import sentencepiece as spm

    buf = io.BytesIO()
    lines = list(_CORPUS_EN) + [s.lower() for s in _CORPUS_EN] + list(_CORPUS_ZH)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, model_type="bpe", vocab_size=vocab,
        hard_vocab_limit=False, character_coverage=1.0, user_defined_symbols=list(TAGS),
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    Path(path).write_bytes(buf.getvalue())
    return int(spm.SentencePieceProcessor(model_proto=buf.getvalue()).get_piece_size())


def build_model(config_text: str, vocab_size: int, seed: int = 0) -> Any:
    """funasr's ``SenseVoiceSmall`` as ``AutoModel`` builds it from ``config_text``, seeded random init."""
    import torch
    import yaml
    from funasr.models.sense_voice.model import SenseVoiceSmall

    cfg = yaml.safe_load(config_text)
    torch.manual_seed(seed)
    model = SenseVoiceSmall(specaug=cfg["specaug"], specaug_conf=cfg["specaug_conf"], encoder=cfg["encoder"],
                            encoder_conf=cfg["encoder_conf"], input_size=560, vocab_size=vocab_size,
                            **cfg["model_conf"])
    with torch.no_grad():  # LayerNorms away from the trivial 1/0 so every tensor carries seeded values
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn(p.shape) * 0.1)
    return model.eval()


def write_random_weights(root: Path, seed: int = 0, num_blocks: int = TEST_NUM_BLOCKS,
                         tp_blocks: int = TEST_TP_BLOCKS) -> None:
    """Write a seeded random SenseVoiceSmall folder (the released five files) at ``root/ROOT_SUBPATH``."""
    import torch

    from iap_bench.metrics.wer_sensevoice import BPE_FILE

    d = Path(root) / ROOT_SUBPATH
    d.mkdir(parents=True, exist_ok=True)
    text = config_yaml(num_blocks, tp_blocks)
    (d / "config.yaml").write_text(text, encoding="utf-8")
    (d / "configuration.json").write_text(configuration_json(), encoding="utf-8")
    vocab = train_bpe(d / BPE_FILE)
    rng = np.random.default_rng(seed)
    mean = 12.0 + 2.0 * rng.standard_normal(80)  # log-mel means/stds of 16-bit-scaled speech, tiled x7 (LFR)
    std = 2.5 + np.abs(rng.standard_normal(80))
    (d / "am.mvn").write_text(am_mvn_text(np.tile(-mean, 7), np.tile(1.0 / std, 7)), encoding="utf-8")
    model = build_model(text, vocab, seed)
    torch.save({"state_dict": model.state_dict()}, d / "model.pt")


def package_model(root: Path, dither: float | None = 0.0, device: str = "cpu") -> Any:
    """funasr ``AutoModel`` on the folder under ``root``, as a user builds it (``dither=None``: funasr's
    default 1.0, random; 0.0: no dither, deterministic)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from funasr import AutoModel

    extra: dict[str, Any] = {} if dither is None else {"frontend_conf": {"dither": float(dither)}}
    return AutoModel(model=str(Path(root) / ROOT_SUBPATH), device=device, disable_update=True,
                     disable_pbar=True, log_level="ERROR", **extra)


def package_transcripts(root: Path, wavs: Sequence[Path], items: Sequence[Item], dither: float | None = 0.0,
                        model: Any = None) -> list[tuple[str, str, float]]:
    """(raw funasr text, hypothesis, WER) per file: one ``generate`` per wav path, as a user runs it."""
    from iap_bench.metrics.text_norm import wer
    from iap_bench.metrics.wer_sensevoice import hypothesis_text

    model = model or package_model(root, dither)
    out = []
    for wav, item in zip(wavs, items, strict=True):
        raw = model.generate(input=str(wav), language=item.language, use_itn=True)[0]["text"]
        hyp = hypothesis_text(raw)
        out.append((raw, hyp, wer(item.speech_text(), hyp, item.language).wer))
    return out


def package_scores(root: Path, wavs: Sequence[Path], items: Sequence[Item], dither: float | None = 0.0
                   ) -> list[float]:
    """WER per file through funasr's own per-file path (``package_transcripts``)."""
    return [w for _, _, w in package_transcripts(root, wavs, items, dither)]


def released_hashes() -> dict[str, str]:
    """sha256 of the released text files (HF FunAudioLLM/SenseVoiceSmall @3847d57b), for the format test."""
    return {"config.yaml": "f71e239ba36705564b5bf2d2ffd07eece07b8e3f2bbf6d2c99d8df856339ac19",
            "configuration.json": "02810a7f8e9e8aee10370a265f7e799728ce25b4c00cdbf4602b303ee395a38e"}


_CONFIGURATION_JSON = (
    '{\n'
    '  "framework": "pytorch",\n'
    '  "task" : "auto-speech-recognition",\n'
    '  "model": {"type" : "funasr"},\n'
    '  "pipeline": {"type":"funasr-pipeline"},\n'
    '  "model_name_in_hub": {\n'
    '    "ms":"", \n'
    '    "hf":""},\n'
    '  "file_path_metas": {\n'
    '    "init_param":"model.pt", \n'
    '    "config":"config.yaml",\n'
    '    "tokenizer_conf": {"bpemodel": "chn_jpn_yue_eng_ko_spectok.bpe.model"},\n'
    '    "frontend_conf":{"cmvn_file": "am.mvn"}}\n'
    '}'
)

_CONFIG_TEMPLATE = """encoder: SenseVoiceEncoderSmall
encoder_conf:
    output_size: 512
    attention_heads: 4
    linear_units: 2048
    num_blocks: {num_blocks}
    tp_blocks: {tp_blocks}
    dropout_rate: 0.1
    positional_dropout_rate: 0.1
    attention_dropout_rate: 0.1
    input_layer: pe
    pos_enc_class: SinusoidalPositionEncoder
    normalize_before: true
    kernel_size: 11
    sanm_shfit: 0
    selfattention_layer_type: sanm


model: SenseVoiceSmall
model_conf:
    length_normalized_loss: true
    sos: 1
    eos: 2
    ignore_id: -1

tokenizer: SentencepiecesTokenizer
tokenizer_conf:
  bpemodel: null
  unk_symbol: <unk>
  split_with_space: true

frontend: WavFrontend
frontend_conf:
    fs: 16000
    window: hamming
    n_mels: 80
    frame_length: 25
    frame_shift: 10
    lfr_m: 7
    lfr_n: 6
    cmvn_file: null


dataset: SenseVoiceCTCDataset
dataset_conf:
  index_ds: IndexDSJsonl
  batch_sampler: EspnetStyleBatchSampler
  data_split_num: 32
  batch_type: token
  batch_size: 14000
  max_token_length: 2000
  min_token_length: 60
  max_source_length: 2000
  min_source_length: 60
  max_target_length: 200
  min_target_length: 0
  shuffle: true
  num_workers: 4
  sos: ${model_conf.sos}
  eos: ${model_conf.eos}
  IndexDSJsonl: IndexDSJsonl
  retry: 20

train_conf:
  accum_grad: 1
  grad_clip: 5
  max_epoch: 20
  keep_nbest_models: 10
  avg_nbest_model: 10
  log_interval: 100
  resume: true
  validate_interval: 10000
  save_checkpoint_interval: 10000

optim: adamw
optim_conf:
  lr: 0.00002
scheduler: warmuplr
scheduler_conf:
  warmup_steps: 25000

specaug: SpecAugLFR
specaug_conf:
    apply_time_warp: false
    time_warp_window: 5
    time_warp_mode: bicubic
    apply_freq_mask: true
    freq_mask_width_range:
    - 0
    - 30
    lfr_rate: 6
    num_freq_mask: 1
    apply_time_mask: true
    time_mask_width_range:
    - 0
    - 12
    num_time_mask: 1
"""
