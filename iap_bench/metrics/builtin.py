"""Built-in metric backends: config name -> the module that registers it (imported only when used)."""

BUILTIN: dict[str, str] = {
    "wer/offline": "iap_bench.metrics.wer",
    "aid_sim/offline": "iap_bench.metrics.aid_sim",
    "vid_sim/offline": "iap_bench.metrics.vid_sim",  # = vid_sim/sface (best ROC AUC offline)
    "vid_sim/sface": "iap_bench.metrics.vid_sim",
    "vid_sim/dlib": "iap_bench.metrics.vid_sim",
}
