"""Stand-in of ZhengPeng7/BiRefNet's (and briaai/RMBG-2.0's) birefnet.py.

Same public surface as the published file: ``Config`` (the repository's own settings
object, not a transformers config), ``BiRefNet(PreTrainedModel)`` with
``config_class = BiRefNetConfig`` and ``__init__(self, bb_pretrained=True,
config=BiRefNetConfig())`` that overwrites ``self.config`` with ``Config()`` and never calls
``post_init``; top-level submodules ``bb`` (backbone), ``squeeze_module``, ``decoder``;
multi-scale input ("cat") and context ("cxt") as in the default configuration; eval
``forward(x)`` returns the list of scaled predictions (logits, last = final, at the input
size). The backbone is a tiny 4-stage conv pyramid instead of Swin-L, and the image-patch
injection blocks use 1x1 convolutions.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from kornia.filters import laplacian
from transformers import PreTrainedModel

from .BiRefNet_config import BiRefNetConfig


class Config:
    def __init__(self) -> None:
        self.bb = "swin_v1_l"
        self.mul_scl_ipt = "cat"
        self.cxt_num = 3
        self.dec_ipt = True
        self.ms_supervision = True
        self.out_ref = True
        self.squeeze_block = "BasicDecBlk_x1"
        embed = 8  # Swin-L: 192
        base = [embed * 8, embed * 4, embed * 2, embed]  # x4..x1 channels
        self.lateral_channels_in_collection = [c * 2 for c in base]  # doubled by "cat"
        self.cxt = self.lateral_channels_in_collection[1:][::-1][-self.cxt_num:]


def image2patches(image, grid_h=2, grid_w=2, patch_ref=None,
                  transformation="b c (hg h) (wg w) -> (b hg wg) c h w"):
    if patch_ref is not None:
        grid_h, grid_w = image.shape[-2] // patch_ref.shape[-2], image.shape[-1] // patch_ref.shape[-1]
    return rearrange(image, transformation, hg=grid_h, wg=grid_w)


class BasicDecBlk(nn.Module):
    def __init__(self, in_channels=64, out_channels=64, inter_channels=64):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, inter_channels, 3, 1, padding=1)
        self.relu_in = nn.ReLU(inplace=True)
        self.conv_out = nn.Conv2d(inter_channels, out_channels, 3, 1, padding=1)
        self.bn_in = nn.BatchNorm2d(inter_channels)
        self.bn_out = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        x = self.relu_in(self.bn_in(self.conv_in(x)))
        return self.bn_out(self.conv_out(x))


class BasicLatBlk(nn.Module):
    def __init__(self, in_channels=64, out_channels=64):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x):
        return self.conv(x)


class SimpleConvs(nn.Module):
    def __init__(self, in_channels, out_channels, inter_channels=8):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, inter_channels, 1, 1, 0)
        self.conv_out = nn.Conv2d(inter_channels, out_channels, 3, 1, 1)

    def forward(self, x):
        return self.conv_out(self.conv1(x))


class _Stage(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.downsample = nn.Conv2d(in_channels, out_channels, 3, stride, 1)
        self.norm = nn.GroupNorm(1, out_channels)

    def forward(self, x):
        return F.gelu(self.norm(self.downsample(x)))


class _Backbone(nn.Module):
    """Four feature maps at 1/4, 1/8, 1/16, 1/32 of the input (Swin-L's strides)."""

    def __init__(self, embed):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, embed, 4, 4)
        dims = [embed, embed * 2, embed * 4, embed * 8]
        self.layers = nn.ModuleList(
            [_Stage(dims[max(i - 1, 0)], dims[i], 1 if i == 0 else 2) for i in range(4)]
        )

    def forward(self, x):
        x = self.patch_embed(x)
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return tuple(outs)


class Decoder(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.config = Config()
        ipt = 4
        self.ipt_blk5 = SimpleConvs(2**10 * 3, ipt)
        self.ipt_blk4 = SimpleConvs(2**8 * 3, ipt)
        self.ipt_blk3 = SimpleConvs(2**6 * 3, ipt)
        self.ipt_blk2 = SimpleConvs(2**4 * 3, ipt)
        self.ipt_blk1 = SimpleConvs(2**0 * 3, ipt)
        self.decoder_block4 = BasicDecBlk(channels[0] + ipt, channels[1], 8)
        self.decoder_block3 = BasicDecBlk(channels[1] + ipt, channels[2], 8)
        self.decoder_block2 = BasicDecBlk(channels[2] + ipt, channels[3], 8)
        self.decoder_block1 = BasicDecBlk(channels[3] + ipt, channels[3] // 2, 8)
        self.lateral_block4 = BasicLatBlk(channels[1], channels[1])
        self.lateral_block3 = BasicLatBlk(channels[2], channels[2])
        self.lateral_block2 = BasicLatBlk(channels[3], channels[3])
        self.conv_ms_spvn_4 = nn.Conv2d(channels[1], 1, 1, 1, 0)
        self.conv_ms_spvn_3 = nn.Conv2d(channels[2], 1, 1, 1, 0)
        self.conv_ms_spvn_2 = nn.Conv2d(channels[3], 1, 1, 1, 0)
        self.conv_out1 = nn.Sequential(nn.Conv2d(channels[3] // 2 + ipt, 1, 1, 1, 0))

    def _inject(self, block, x, ref):
        patches = image2patches(x, patch_ref=ref, transformation="b c (hg h) (wg w) -> b (c hg wg) h w")
        return block(F.interpolate(patches, size=ref.shape[2:], mode="bilinear", align_corners=True))

    def forward(self, features):
        x, x1, x2, x3, x4 = features
        outs = []
        p4 = self.decoder_block4(torch.cat((x4, self._inject(self.ipt_blk5, x, x4)), 1))
        m4 = self.conv_ms_spvn_4(p4) if self.config.ms_supervision and self.training else None
        _p3 = F.interpolate(p4, size=x3.shape[2:], mode="bilinear", align_corners=True)
        _p3 = _p3 + self.lateral_block4(x3)
        p3 = self.decoder_block3(torch.cat((_p3, self._inject(self.ipt_blk4, x, x3)), 1))
        m3 = self.conv_ms_spvn_3(p3) if self.config.ms_supervision and self.training else None
        _p2 = F.interpolate(p3, size=x2.shape[2:], mode="bilinear", align_corners=True)
        _p2 = _p2 + self.lateral_block3(x2)
        p2 = self.decoder_block2(torch.cat((_p2, self._inject(self.ipt_blk3, x, x2)), 1))
        m2 = self.conv_ms_spvn_2(p2) if self.config.ms_supervision and self.training else None
        _p1 = F.interpolate(p2, size=x1.shape[2:], mode="bilinear", align_corners=True)
        _p1 = _p1 + self.lateral_block2(x1)
        _p1 = torch.cat((_p1, self._inject(self.ipt_blk2, x, x1)), 1)
        _p1 = self.decoder_block1(_p1)
        _p1 = F.interpolate(_p1, size=x.shape[2:], mode="bilinear", align_corners=True)
        _p1 = torch.cat((_p1, self._inject(self.ipt_blk1, x, x)), 1)
        p1_out = self.conv_out1(_p1)
        if self.config.ms_supervision and self.training:
            outs.extend([m4, m3, m2])
            if self.config.out_ref:
                outs.append(laplacian(torch.sigmoid(p1_out), kernel_size=5))
        outs.append(p1_out)
        return outs


class BiRefNet(PreTrainedModel):
    config_class = BiRefNetConfig

    def __init__(self, bb_pretrained=True, config=BiRefNetConfig()):
        super().__init__(config)
        self.bb_pretrained = config.bb_pretrained  # published: passed to build_backbone
        self.config = Config()
        self.epoch = 1
        self.bb = _Backbone(8)
        channels = self.config.lateral_channels_in_collection
        self.squeeze_module = nn.Sequential(
            BasicDecBlk(channels[0] + sum(self.config.cxt), channels[0], 8)
        )
        self.decoder = Decoder(channels)

    def forward_enc(self, x):
        x1, x2, x3, x4 = self.bb(x)
        _, _, h, w = x.shape
        x1_, x2_, x3_, x4_ = self.bb(F.interpolate(x, size=(h // 2, w // 2), mode="bilinear",
                                                   align_corners=True))
        x1 = torch.cat([x1, F.interpolate(x1_, size=x1.shape[2:], mode="bilinear", align_corners=True)], 1)
        x2 = torch.cat([x2, F.interpolate(x2_, size=x2.shape[2:], mode="bilinear", align_corners=True)], 1)
        x3 = torch.cat([x3, F.interpolate(x3_, size=x3.shape[2:], mode="bilinear", align_corners=True)], 1)
        x4 = torch.cat([x4, F.interpolate(x4_, size=x4.shape[2:], mode="bilinear", align_corners=True)], 1)
        x4 = torch.cat(
            (
                *[F.interpolate(t, size=x4.shape[2:], mode="bilinear", align_corners=True)
                  for t in (x1, x2, x3)][-self.config.cxt_num:],
                x4,
            ),
            dim=1,
        )
        return (x1, x2, x3, x4), None

    def forward_ori(self, x):
        (x1, x2, x3, x4), class_preds = self.forward_enc(x)
        x4 = self.squeeze_module(x4)
        scaled_preds = self.decoder([x, x1, x2, x3, x4])
        return scaled_preds, class_preds

    def forward(self, x):
        scaled_preds, class_preds = self.forward_ori(x)
        class_preds_lst = [class_preds]
        return [scaled_preds, class_preds_lst] if self.training else scaled_preds
