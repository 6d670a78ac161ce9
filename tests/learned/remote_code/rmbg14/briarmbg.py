"""Stand-in of briaai/RMBG-1.4's briarmbg.py: the IS-Net architecture, widths / 16."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel

from .MyConfig import RMBGConfig

WIDTH_DIVISOR = 16  # the published file uses the full widths (64, 128, 256, 512)


def _c(channels):
    return max(1, channels // WIDTH_DIVISOR)


class REBNCONV(nn.Module):
    def __init__(self, in_ch=3, out_ch=3, dirate=1, stride=1):
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=1 * dirate, dilation=1 * dirate,
                                 stride=stride)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


def _upsample_like(src, tar):
    return F.interpolate(src, size=tar.shape[2:], mode="bilinear")


class _RSU(nn.Module):
    """RSU-L: an encoder-decoder of ``height`` REBNCONVs with pooling between levels."""

    height = 7

    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__()
        h = self.height
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        for i in range(1, h - 1):
            setattr(self, f"pool{i}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
            setattr(self, f"rebnconv{i + 1}", REBNCONV(mid_ch, mid_ch, dirate=1))
        setattr(self, f"rebnconv{h}", REBNCONV(mid_ch, mid_ch, dirate=2))
        for i in range(h - 1, 1, -1):
            setattr(self, f"rebnconv{i}d", REBNCONV(mid_ch * 2, mid_ch, dirate=1))
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x):
        h = self.height
        hxin = self.rebnconvin(x)
        enc = [self.rebnconv1(hxin)]
        for i in range(1, h - 1):
            enc.append(getattr(self, f"rebnconv{i + 1}")(getattr(self, f"pool{i}")(enc[-1])))
        hx = getattr(self, f"rebnconv{h}")(enc[-1])
        for i in range(h - 1, 0, -1):
            hx = getattr(self, f"rebnconv{i}d")(torch.cat((hx, enc[i - 1]), 1))
            if i > 1:
                hx = _upsample_like(hx, enc[i - 2])
        return hx + hxin


class RSU7(_RSU):
    height = 7


class RSU6(_RSU):
    height = 6


class RSU5(_RSU):
    height = 5


class RSU4(_RSU):
    height = 4


class RSU4F(nn.Module):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=4)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=8)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, dirate=4)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, dirate=2)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x):
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((hx3d, hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((hx2d, hx1), 1))
        return hx1d + hxin


class BriaRMBG(PreTrainedModel):
    config_class = RMBGConfig

    def __init__(self, config: RMBGConfig = RMBGConfig()):
        super().__init__(config)
        in_ch = config.in_ch
        out_ch = config.out_ch
        self.conv_in = nn.Conv2d(in_ch, _c(64), 3, stride=2, padding=1)
        self.pool_in = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.stage1 = RSU7(_c(64), _c(32), _c(64))
        self.pool12 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.stage2 = RSU6(_c(64), _c(32), _c(128))
        self.pool23 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.stage3 = RSU5(_c(128), _c(64), _c(256))
        self.pool34 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.stage4 = RSU4(_c(256), _c(128), _c(512))
        self.pool45 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.stage5 = RSU4F(_c(512), _c(256), _c(512))
        self.pool56 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.stage6 = RSU4F(_c(512), _c(256), _c(512))
        self.stage5d = RSU4F(_c(1024), _c(256), _c(512))
        self.stage4d = RSU4(_c(1024), _c(128), _c(256))
        self.stage3d = RSU5(_c(512), _c(64), _c(128))
        self.stage2d = RSU6(_c(256), _c(32), _c(64))
        self.stage1d = RSU7(_c(128), _c(16), _c(64))
        self.side1 = nn.Conv2d(_c(64), out_ch, 3, padding=1)
        self.side2 = nn.Conv2d(_c(64), out_ch, 3, padding=1)
        self.side3 = nn.Conv2d(_c(128), out_ch, 3, padding=1)
        self.side4 = nn.Conv2d(_c(256), out_ch, 3, padding=1)
        self.side5 = nn.Conv2d(_c(512), out_ch, 3, padding=1)
        self.side6 = nn.Conv2d(_c(512), out_ch, 3, padding=1)

    def forward(self, x):
        hx = x
        hxin = self.conv_in(hx)
        hx = self.pool_in(hxin)
        hx1 = self.stage1(hxin)
        hx = self.pool12(hx1)
        hx2 = self.stage2(hx)
        hx = self.pool23(hx2)
        hx3 = self.stage3(hx)
        hx = self.pool34(hx3)
        hx4 = self.stage4(hx)
        hx = self.pool45(hx4)
        hx5 = self.stage5(hx)
        hx = self.pool56(hx5)
        hx6 = self.stage6(hx)
        hx6up = _upsample_like(hx6, hx5)
        hx5d = self.stage5d(torch.cat((hx6up, hx5), 1))
        hx5dup = _upsample_like(hx5d, hx4)
        hx4d = self.stage4d(torch.cat((hx5dup, hx4), 1))
        hx4dup = _upsample_like(hx4d, hx3)
        hx3d = self.stage3d(torch.cat((hx4dup, hx3), 1))
        hx3dup = _upsample_like(hx3d, hx2)
        hx2d = self.stage2d(torch.cat((hx3dup, hx2), 1))
        hx2dup = _upsample_like(hx2d, hx1)
        hx1d = self.stage1d(torch.cat((hx2dup, hx1), 1))
        d1 = _upsample_like(self.side1(hx1d), x)
        d2 = _upsample_like(self.side2(hx2d), x)
        d3 = _upsample_like(self.side3(hx3d), x)
        d4 = _upsample_like(self.side4(hx4d), x)
        d5 = _upsample_like(self.side5(hx5d), x)
        d6 = _upsample_like(self.side6(hx6), x)
        return [F.sigmoid(d1), F.sigmoid(d2), F.sigmoid(d3), F.sigmoid(d4), F.sigmoid(d5),
                F.sigmoid(d6)], [hx1d, hx2d, hx3d, hx4d, hx5d, hx6]
