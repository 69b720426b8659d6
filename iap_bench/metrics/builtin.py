"""Built-in metric backends: config name -> the module that registers it (imported only when used)."""

BUILTIN: dict[str, str] = {
    "wer/offline": "iap_bench.metrics.wer",
    "aid_sim/offline": "iap_bench.metrics.aid_sim",
    "vid_sim/offline": "iap_bench.metrics.vid_sim",  # = vid_sim/sface (best ROC AUC offline)
    "vid_sim/sface": "iap_bench.metrics.vid_sim",
    "vid_sim/dlib": "iap_bench.metrics.vid_sim",
    # paper audio metrics (METRICS.md §1): the reference models, loaded from user-provided checkpoints
    "pq/reference": "iap_bench.metrics.pq",  # Audiobox Aesthetics (CE, CU, PC stored as extras)
    "clap/reference": "iap_bench.metrics.clap",  # LAION-CLAP music_speech_audioset_epoch_15 (HTSAT-base)
    "fd/reference": "iap_bench.metrics.fd",  # FD-VGG (VGGish), set-level
    "fd_passt/reference": "iap_bench.metrics.fd",  # FD-PaSST, set-level (extra column)
    "fd_pann/reference": "iap_bench.metrics.fd",  # FD-PANN (Cnn14 16 kHz), set-level (extra column)
    "wer/reference": "iap_bench.metrics.wer_sensevoice",  # SenseVoiceSmall + Seed-TTS-eval normalisation
    "aid_sim/reference": "iap_bench.metrics.aid_sim_wavlm",  # WavLM-Large + ECAPA-TDNN (UniSpeech SV)
    # video / audio-visual (METRICS.md §3)
    "sync/offline": "iap_bench.metrics.sync_offline",  # mouth aperture vs speech envelope, no checkpoint
    "vid_sim/reference": "iap_bench.metrics.vid_sim_arcface",  # insightface ArcFace, buffalo_l
    "vid_sim/antelopev2": "iap_bench.metrics.vid_sim_arcface",  # insightface glintr100 (labelled variant)
}
