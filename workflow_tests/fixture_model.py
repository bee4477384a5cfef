"""A model whose logits are known by construction (test double; lives only in workflow_tests/).

With preprocessing mean=0, std=1 the input is pixel/255. The model reads the image's mean red
value r (0..255, an integer for the uniform-colour fixture images) and returns
logits[k] = -|k - r|: the prediction is ImageNet class r, and every probability is known.
"""

import time

import torch
from torch import nn


class RedChannelClassifier(nn.Module):
    def __init__(self, sleep_s: float = 0.0):
        super().__init__()
        self.register_buffer("classes", torch.arange(1000, dtype=torch.float32))
        self.sleep_s = sleep_s

    def forward(self, x):
        if self.sleep_s:
            time.sleep(self.sleep_s)  # makes concurrent jobs overlap in the GPU-lease test
        red = torch.round(x[:, 0].float().mean(dim=(1, 2)) * 255.0)
        return -(self.classes[None, :] - red[:, None]).abs()


def build(sleep_s: float = 0.0):
    return RedChannelClassifier(sleep_s)
