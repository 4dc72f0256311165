"""A small YOLO-style detector, written here for the conformance tests.

It has the parts that YOLOv5/v8 exports put in front of an inference
engine: Conv-BatchNorm-SiLU blocks, a C2f-like block that Splits and
Concats, an SPPF block of three chained 5x5 max-pools, a neck that
upsamples with nearest Resize and concatenates, and an anchor-free head
with a DFL (softmax over 16 distance bins, then a fixed 1x1 convolution)
whose boxes are decoded to centre boxes in input pixels: the output is
[N, 4 + classes, anchors], as YOLOv8 exports it. Random weights; the
conformance test compares it with PyTorch and ONNX Runtime.
"""
import torch
from torch import nn

REG_MAX = 16


class ConvBnSiLU(nn.Module):
    def __init__(self, c_in, c_out, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class C2f(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.c = c_out // 2
        self.cv1 = ConvBnSiLU(c_in, 2 * self.c)
        self.m = nn.Sequential(ConvBnSiLU(self.c, self.c, 3), ConvBnSiLU(self.c, self.c, 3))
        self.cv2 = ConvBnSiLU(3 * self.c, c_out)

    def forward(self, x):
        a, b = self.cv1(x).split((self.c, self.c), 1)
        return self.cv2(torch.cat((a, b, self.m(b)), 1))


class SPPF(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cv1 = ConvBnSiLU(c, c // 2)
        self.cv2 = ConvBnSiLU(c * 2, c)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), 1))


class YoloTiny(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.classes = classes
        self.stem = nn.Sequential(ConvBnSiLU(3, 16, 3, 2), ConvBnSiLU(16, 32, 3, 2), C2f(32, 32))
        self.p3 = nn.Sequential(ConvBnSiLU(32, 64, 3, 2), C2f(64, 64))
        self.p4 = nn.Sequential(ConvBnSiLU(64, 96, 3, 2), C2f(96, 96))
        self.p5 = nn.Sequential(ConvBnSiLU(96, 128, 3, 2), C2f(128, 128), SPPF(128))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.n4 = C2f(128 + 96, 96)
        self.n3 = C2f(96 + 64, 64)
        self.box = nn.ModuleList(nn.Sequential(ConvBnSiLU(c, 32, 3), nn.Conv2d(32, 4 * REG_MAX, 1))
                                 for c in (64, 96, 128))
        self.cls = nn.ModuleList(nn.Sequential(ConvBnSiLU(c, 32, 3), nn.Conv2d(32, classes, 1))
                                 for c in (64, 96, 128))
        self.dfl = nn.Conv2d(REG_MAX, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(REG_MAX, dtype=torch.float).view(1, REG_MAX, 1, 1)
        self.strides = (8, 16, 32)

    def forward(self, x):
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        n4 = self.n4(torch.cat((self.up(p5), p4), 1))
        n3 = self.n3(torch.cat((self.up(n4), p3), 1))
        feats = (n3, n4, p5)
        b = x.shape[0]
        dist, cls, anchors, strides = [], [], [], []
        for i, f in enumerate(feats):
            h, w = f.shape[2], f.shape[3]
            dist.append(self.box[i](f).view(b, 4 * REG_MAX, -1))
            cls.append(self.cls[i](f).view(b, self.classes, -1))
            sy, sx = torch.meshgrid(torch.arange(h, dtype=torch.float) + 0.5,
                                    torch.arange(w, dtype=torch.float) + 0.5, indexing="ij")
            anchors.append(torch.stack((sx, sy), -1).view(-1, 2))
            strides.append(torch.full((h * w, 1), float(self.strides[i])))
        dist = torch.cat(dist, 2)
        cls = torch.cat(cls, 2)
        anchor = torch.cat(anchors).transpose(0, 1).unsqueeze(0)
        stride = torch.cat(strides).transpose(0, 1).unsqueeze(0)
        a = dist.shape[2]
        # DFL: expected distance over the bins
        d = self.dfl(dist.view(b, 4, REG_MAX, a).transpose(2, 1).softmax(1)).view(b, 4, a)
        lt, rb = d.chunk(2, 1)
        x1y1, x2y2 = anchor - lt, anchor + rb
        box = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * stride
        return torch.cat((box, cls.sigmoid()), 1)
