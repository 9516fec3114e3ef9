"""Plain nn.Modules: the STMC transformer denoiser and the sentence encoders."""
