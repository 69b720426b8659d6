"""IAP-Bench: harness for identity-aware joint audio-video generation."""

__version__ = "0.1.0"
