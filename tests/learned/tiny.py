"""Builders of tiny random-weight checkpoints, saved in the same layouts as the real ones.

Every builder writes a directory with ``save_pretrained`` and returns its path; tests then
load it through the backends' own code (``from_pretrained`` with ``HF_HUB_OFFLINE=1``).
Sizes are chosen so each model has at most a few hundred thousand parameters and runs
in milliseconds at 64x64 on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SEED = 0


def _byte_chars() -> list[str]:
    """GPT-2/CLIP byte-to-unicode table: printable stand-ins for the 256 byte values."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    extra = 0
    table = {}
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def _tokenizer_files(directory: Path) -> tuple[dict[str, int], list[str]]:
    """A byte-level CLIP BPE vocabulary with no merges: every byte is one token."""
    chars = _byte_chars()
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    return vocab, []


def tiny_clip_tokenizer(directory: Path, max_length: int = 16):
    """A CLIPTokenizer from a hand-written byte vocabulary (516 tokens, no merges)."""
    from transformers import CLIPTokenizer

    vocab, merges = _tokenizer_files(directory)
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
    tok.save_pretrained(directory)
    return tok


def _clip_text_config(projection_dim: int = 16):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_hidden_layers=2,
        vocab_size=520,
        max_position_embeddings=16,
        projection_dim=projection_dim,
        hidden_act="gelu",
    )


def tiny_vae(latent_channels: int = 4):
    """AutoencoderKL with one downsampling (vae_scale_factor 2)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(SEED)
    return AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=latent_channels,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=64,
    )


# ------------------------------------------------------------------ depth

def _lively(model: torch.nn.Module) -> torch.nn.Module:
    """Re-initialise convolutions/linears with PyTorch's default (Kaiming-uniform) init.

    transformers initialises with std 0.02, which after a dozen layers makes a tiny
    random depth head output ~1e-10 everywhere; this keeps outputs varied (order 0.1-1)
    so the backends' post-processing is exercised on non-degenerate predictions.
    """
    torch.manual_seed(SEED)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d | torch.nn.Linear):
            m.reset_parameters()
    return model


def tiny_dpt(directory: Path, image_size: int = 32) -> Path:
    """DPT (MiDaS-style) depth model + DPTImageProcessor."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(SEED)
    cfg = DPTConfig(
        image_size=image_size,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 8, 8, 8],
        fusion_hidden_size=8,
        head_in_index=-1,
        reassemble_factors=[4, 2, 1, 0.5],
        is_hybrid=False,
    )
    model = _lively(DPTForDepthEstimation(cfg)).eval()
    model.save_pretrained(directory)
    DPTImageProcessor(
        size={"height": image_size, "width": image_size}, keep_aspect_ratio=False,
        ensure_multiple_of=8, do_pad=False,
    ).save_pretrained(directory)
    return Path(directory)


def tiny_depth_anything(directory: Path, image_size: int = 28) -> Path:
    """Depth Anything (DINOv2 backbone) + DPTImageProcessor."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    torch.manual_seed(SEED)
    backbone = Dinov2Config(
        image_size=image_size,
        patch_size=7,
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        out_indices=[1, 2, 3, 4],
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    cfg = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        patch_size=7,
        neck_hidden_sizes=[8, 8, 8, 8],
        fusion_hidden_size=8,
        head_hidden_size=8,
        reassemble_factors=[4, 2, 1, 0.5],
    )
    model = _lively(DepthAnythingForDepthEstimation(cfg)).eval()
    model.save_pretrained(directory)
    DPTImageProcessor(
        size={"height": image_size, "width": image_size}, keep_aspect_ratio=False,
        ensure_multiple_of=7, do_pad=False,
    ).save_pretrained(directory)
    return Path(directory)


# ------------------------------------------------------------------ segmentation

def tiny_segformer(directory: Path, image_size: int = 32) -> Path:
    """SegFormer semantic segmentation with labels {0: background, 1: foreground}."""
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessor,
    )

    torch.manual_seed(SEED)
    cfg = SegformerConfig(
        num_channels=3,
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        num_labels=2,
        id2label={0: "background", 1: "foreground"},
        label2id={"background": 0, "foreground": 1},
    )
    model = SegformerForSemanticSegmentation(cfg).eval()
    model.save_pretrained(directory)
    SegformerImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(
        directory
    )
    return Path(directory)


# ------------------------------------------------------------------ features

def tiny_dinov2(directory: Path, image_size: int = 28) -> Path:
    """DINOv2 backbone + BitImageProcessor (the real facebook/dinov2-* layout)."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(SEED)
    cfg = Dinov2Config(
        image_size=image_size, patch_size=7, hidden_size=16, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=32,
    )
    Dinov2Model(cfg).eval().save_pretrained(directory)
    BitImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(directory)
    return Path(directory)


# ------------------------------------------------------------------ zero123

def tiny_zero123(directory: Path, size: int = 32) -> Path:
    """A Zero123 checkpoint directory in the diffusers layout used by the public ports.

    Components: vae, unet (8 input channels: noisy latents + image latents), image_encoder
    (CLIPVisionModelWithProjection), feature_extractor (CLIPImageProcessor), scheduler
    (DDIM), cc_projection (Linear(embed+4 -> cross_attention_dim)).
    """
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from glimpse3d.learned.multiview import CCProjection

    directory = Path(directory)
    embed = 16
    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        sample_size=size // 2,
        in_channels=8,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=embed,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vision = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            image_size=size, patch_size=8, hidden_size=16, intermediate_size=32,
            num_hidden_layers=2, num_attention_heads=2, projection_dim=embed,
        )
    )
    unet.save_pretrained(directory / "unet")
    tiny_vae().save_pretrained(directory / "vae")
    vision.save_pretrained(directory / "image_encoder")
    CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    ).save_pretrained(directory / "feature_extractor")
    DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False,
                  set_alpha_to_one=False).save_pretrained(directory / "scheduler")
    CCProjection(in_channel=embed + 4, out_channel=embed).save_pretrained(
        directory / "cc_projection"
    )
    (directory / "model_index.json").write_text(json.dumps({
        "_class_name": "Zero1to3StableDiffusionPipeline",
        "vae": ["diffusers", "AutoencoderKL"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "cc_projection": ["diffusers_modules.local.pipeline_zero1to3", "CCProjection"],
    }))
    return directory


# ------------------------------------------------------------------ SDXL

def tiny_sdxl(directory: Path, size: int = 64, variant: str | None = None) -> Path:
    """A StableDiffusionXL checkpoint (two CLIP text encoders, text_time UNet, VAE);
    ``variant="fp16"`` writes only ``*.fp16.safetensors`` weight files (still fp32 data)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    directory = Path(directory)
    torch.manual_seed(SEED)
    unet = _tiny_sdxl_unet(size)
    te1 = CLIPTextModel(_clip_text_config())
    te2 = CLIPTextModelWithProjection(_clip_text_config(projection_dim=16))
    tok = tiny_clip_tokenizer(directory / "_tok")
    sched = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        timestep_spacing="leading", steps_offset=1,
    )
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=tiny_vae(), text_encoder=te1, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok,
        unet=unet, scheduler=sched, requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
    )
    pipe.save_pretrained(directory, variant=variant)
    return directory


def _tiny_sdxl_unet(size: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=size // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=2,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=4,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 4 + 16,
        cross_attention_dim=32,
        norm_num_groups=4,
    )


def tiny_sdxl_fp16(directory: Path) -> Path:
    """``tiny_sdxl`` saved as the fp16 weight variant only."""
    return tiny_sdxl(directory, variant="fp16")


def tiny_controlnet(directory: Path, size: int = 64) -> Path:
    """A depth ControlNet matching ``tiny_sdxl``'s UNet."""
    from diffusers import ControlNetModel

    torch.manual_seed(SEED)
    net = ControlNetModel.from_unet(_tiny_sdxl_unet(size), conditioning_embedding_out_channels=(4, 8))
    net.save_pretrained(directory)
    return Path(directory)


# ------------------------------------------------------------------ remote-code matting

_MATTE_CONFIG = '''
from transformers import PretrainedConfig


class TinyMatteConfig(PretrainedConfig):
    model_type = "tinymatte"

    def __init__(self, channels=4, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
'''

_MATTE_MODEL = '''
import torch
from transformers import PreTrainedModel

from .configuration_tinymatte import TinyMatteConfig


class TinyMatte(PreTrainedModel):
    """BiRefNet-shaped toy: returns a list of maps whose last one is the final logits."""

    config_class = TinyMatteConfig

    def __init__(self, config):
        super().__init__(config)
        self.conv = torch.nn.Conv2d(3, config.channels, 3, padding=1)
        self.head = torch.nn.Conv2d(config.channels, 1, 1)
        self.post_init()

    def _init_weights(self, module):
        pass

    def forward(self, pixel_values):
        h = torch.relu(self.conv(pixel_values))
        return [h[:, :1], self.head(h) - 0.5]
'''


def tiny_matting(directory: Path) -> Path:
    """A checkpoint with its own code (``auto_map`` + modeling file), like BiRefNet/RMBG:
    loadable only with ``trust_remote_code=True``; ships no image processor."""
    import importlib.util
    import sys

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "configuration_tinymatte.py").write_text(_MATTE_CONFIG)
    (directory / "modeling_tinymatte.py").write_text(_MATTE_MODEL)
    (directory / "__init__.py").write_text("")
    pkg = f"_tinymatte_{abs(hash(str(directory)))}"
    spec = importlib.util.spec_from_file_location(pkg, directory / "__init__.py",
                                                  submodule_search_locations=[str(directory)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[pkg] = module
    spec.loader.exec_module(module)
    cfg_mod = importlib.import_module(f"{pkg}.configuration_tinymatte")
    model_mod = importlib.import_module(f"{pkg}.modeling_tinymatte")
    torch.manual_seed(SEED)
    model = model_mod.TinyMatte(cfg_mod.TinyMatteConfig())
    model.save_pretrained(directory)
    (directory / "__init__.py").unlink()
    cfg = json.loads((directory / "config.json").read_text())
    cfg["auto_map"] = {
        "AutoConfig": "configuration_tinymatte.TinyMatteConfig",
        "AutoModelForImageSegmentation": "modeling_tinymatte.TinyMatte",
    }
    cfg["architectures"] = ["TinyMatte"]
    (directory / "config.json").write_text(json.dumps(cfg))
    return directory


def tiny_clip(directory: Path, image_size: int = 32) -> Path:
    """A CLIP (text + vision) checkpoint + CLIPImageProcessor, as openai/clip-vit-*."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(SEED)
    cfg = CLIPConfig(
        text_config=_clip_text_config(projection_dim=12).to_dict(),
        vision_config={"image_size": image_size, "patch_size": 8, "hidden_size": 16,
                       "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2},
        projection_dim=12,
    )
    CLIPModel(cfg).eval().save_pretrained(directory)
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(directory)
    return Path(directory)
