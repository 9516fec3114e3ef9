"""IMF networks as plain ``nn.Module``s."""

from imf.model.alignment import ImplicitMotionAlignment, cross_attention
from imf.model.discriminator import MultiScalePatchDiscriminator, PatchDiscriminator
from imf.model.encoders import DenseFeatureEncoder, LatentTokenEncoder
from imf.model.frame_decoder import FrameDecoder
from imf.model.generator import IMFGenerator, ReferenceCode
from imf.model.stylegan import ModulatedConv2d, StyledConv
from imf.model.token_decoder import LatentTokenDecoder

__all__ = [
    "DenseFeatureEncoder",
    "FrameDecoder",
    "IMFGenerator",
    "ImplicitMotionAlignment",
    "LatentTokenDecoder",
    "LatentTokenEncoder",
    "ModulatedConv2d",
    "MultiScalePatchDiscriminator",
    "PatchDiscriminator",
    "ReferenceCode",
    "StyledConv",
    "cross_attention",
]
