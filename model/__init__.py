"""IAP generator ("Identity as Presence" on Ovi's dual tower); see shared/docs/ARCHITECTURE.md and model/README.md.

Public entry points: model.config.IAPConfig / build_config, model.fusion_model.IAPFusionModel,
model.identity.IdentityRefs / pack_multiview, model.sampling.sample, model.stages.apply_stage,
model.checkpoint.load_ovi_weights / save_checkpoint / load_checkpoint.
"""
