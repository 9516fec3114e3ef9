"""Plain nn.Modules of the text-to-pose model and its refinement sampler."""
