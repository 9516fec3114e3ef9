"""HamNoSys text to sign-language pose sequences by iterative x0 refinement (text-to-pose HEAD,
sign-language-processing/transcription, with its bugs fixed)."""
