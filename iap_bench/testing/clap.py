"""Test support for ``clap/reference``: a seeded random CLAP checkpoint, a real-format roberta-base folder, and
the package path.

``write_random_weights`` writes, under ``root``:
- ``clap/music_speech_audioset_epoch_15_esc_89.98.pt`` in the released file's format, the one laion_clap's
  ``load_state_dict`` reads: ``torch.save({'epoch': 15, 'name': ..., 'state_dict': {'module.<key>': tensor}})``,
  DDP ``module.`` prefixes, and the ``text_branch.embeddings.position_ids`` buffer the released file carries
  (laion_clap deletes that key unconditionally, so a file without it would not load). The model is the
  package's own ``create_model('HTSAT-base', 'roberta')`` at real size (200 M parameters, ~800 MB: HTSAT-base
  73 M + the roberta-base text branch 125 M), initialised by the package's constructors under
  ``torch.manual_seed(seed)`` (so the STFT and mel filter banks stay the real ones). The released file is a
  training checkpoint that also holds optimizer state; that is not written.
- ``clap/roberta-base``: what the harness reads from a real roberta-base download (roberta-base cannot be
  downloaded here): a byte-level BPE tokenizer in RoBERTa's folder format (``vocab.json`` + ``merges.txt``,
  specials ``<s> <pad> </s> <unk> <mask>`` at ids 0-4 as in roberta-base), trained with the ``tokenizers``
  library on ``CORPUS`` (a few hundred tokens: the 256 byte symbols + merges), and roberta-base's own
  ``config.json`` (12 layers, 768 wide, vocabulary 50265, 514 positions), so the text branch has the real shape.

``package_scores``: laion_clap's own path as a user runs it: ``CLAP_Module(enable_fusion=False,
amodel='HTSAT-base')``, ``load_ckpt(ckpt=path)``, then per file ``get_audio_embedding_from_filelist([wav])``
(librosa at 48 kHz with soxr HQ, the int16 round trip, repeat-pad; clips over 10 s are randomly cropped, its
behaviour) and ``get_text_embedding([item.text_prompt()])``, score = their dot product (both L2-normalised).
Offline, the names laion_clap loads ('roberta-base' for ``RobertaModel`` and ``RobertaTokenizer``) are served
from the local folder (``iap_bench.metrics.clap.local_roberta``): the RoBERTa weights themselves are replaced
by the checkpoint's, so building RoBERTa from ``config.json`` is what loading 'roberta-base' amounts to.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iap_bench.metrics.clap import CKPT_SUBPATH, ROBERTA_SUBPATH

if TYPE_CHECKING:
    from iap_bench.benchmark.schema import Item

# roberta-base's config.json (huggingface.co/roberta-base)
ROBERTA_BASE_CONFIG = {
    "architectures": ["RobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1, "bos_token_id": 0,
    "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 514,
    "model_type": "roberta", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
    "type_vocab_size": 1, "vocab_size": 50265}
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
BPE_VOCAB = 600
CORPUS = (
    "Scene: a small kitchen with warm light. Camera: static medium shot. A woman speaks softly to a man.",
    "Scene: a busy street at night. Camera: slow pan. Two friends talk while cars pass and rain falls.",
    "Audio: quiet room tone; sound effects: a door closes, footsteps, a dog barks twice in the distance.",
    "The quick brown fox jumps over the lazy dog near the quiet river bank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We will meet again tomorrow morning at the old station before the train leaves.",
    "A man with short hair looks at the camera and says hello; he smiles and nods calmly.",
    "Music plays in the background while the speaker explains the plan in a clear, steady voice.",
)


def write_roberta_folder(folder: Path) -> Path:
    """A roberta-base-format folder: trained byte-level BPE (vocab.json, merges.txt) + roberta-base config.json."""
    from tokenizers import ByteLevelBPETokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(CORPUS) * 4, vocab_size=BPE_VOCAB, min_frequency=2,
                            special_tokens=SPECIAL_TOKENS, show_progress=False)
    bpe.save_model(str(folder))
    (folder / "config.json").write_text(json.dumps(ROBERTA_BASE_CONFIG, indent=2) + "\n")
    return folder


def random_checkpoint(roberta_dir: Path, seed: int = 0) -> dict[str, Any]:
    """The released checkpoint's structure with the package's seeded random initialisation."""
    import torch

    from iap_bench.metrics import clap

    config, _ = clap.load_roberta(roberta_dir)
    torch.manual_seed(seed)
    with clap.local_roberta(config):
        model, _ = clap.import_clap_module().create_model(clap.AMODEL, "roberta", precision="fp32",
                                                          device=torch.device("cpu"), enable_fusion=False)
    state = {f"module.{k}": v.detach() for k, v in model.state_dict().items()}
    state[f"module.{clap.POSITION_IDS_KEY}"] = torch.arange(config.max_position_embeddings).expand((1, -1)).clone()
    return {"epoch": 15, "name": "music_speech_audioset_epoch_15 (seeded random test weights)", "state_dict": state}


def write_random_weights(root: Path, seed: int = 0) -> None:
    """Write ``root/clap/<checkpoint>`` and ``root/clap/roberta-base`` so that ``weights.root=root`` runs CLAP."""
    import torch

    roberta = write_roberta_folder(Path(root) / ROBERTA_SUBPATH)
    path = Path(root) / CKPT_SUBPATH
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_checkpoint(roberta, seed), path)


@contextmanager
def _local_tokenizer(folder: Path) -> Iterator[None]:
    """While active, ``CLAP_Module``'s ``RobertaTokenizer.from_pretrained('roberta-base')`` reads ``folder``."""
    import laion_clap.hook as hook

    original = hook.RobertaTokenizer

    class _Local:
        @staticmethod
        def from_pretrained(name: str, *args: Any, **kwargs: Any) -> Any:
            if name != "roberta-base":
                raise ValueError(f"unexpected tokenizer {name!r}")
            return original.from_pretrained(str(folder), local_files_only=True)

    hook.RobertaTokenizer = _Local
    try:
        yield
    finally:
        hook.RobertaTokenizer = original


def package_module(root: Path) -> Any:
    """``laion_clap.CLAP_Module(enable_fusion=False, amodel='HTSAT-base')`` with ``load_ckpt`` of the random file."""
    from iap_bench.metrics.clap import AMODEL, load_roberta, local_roberta, set_offline

    set_offline()
    import laion_clap

    roberta = Path(root) / ROBERTA_SUBPATH
    config, _ = load_roberta(roberta)
    with local_roberta(config), _local_tokenizer(roberta):
        module = laion_clap.CLAP_Module(enable_fusion=False, amodel=AMODEL)
    module.load_ckpt(ckpt=str(Path(root) / CKPT_SUBPATH), verbose=False)
    return module.eval()


def scores_with(module: Any, wavs: Sequence[Path], items: Sequence[Item]) -> list[float]:
    """The package path's score of each (file, item): filelist audio embedding . text embedding."""
    import numpy as np

    if len(wavs) != len(items):
        raise ValueError(f"{len(wavs)} wavs for {len(items)} items")
    out = []
    for wav, item in zip(wavs, items):
        audio = module.get_audio_embedding_from_filelist([str(wav)])
        text = module.get_text_embedding([item.text_prompt()])
        out.append(float(np.dot(audio[0], text[0])))
    return out


def package_scores(root: Path, wavs: Sequence[Path], items: Sequence[Item]) -> list[float]:
    """CLAP score of each file against its item's prompt by laion_clap's own path, file after file."""
    return scores_with(package_module(root), wavs, items)
