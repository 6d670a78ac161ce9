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


def _tiny_transformer(layers: int) -> dict[str, int]:
    """Width of every tiny transformer here (16 hidden, 2 heads, 32 MLP) with ``layers``
    layers, as config keyword arguments."""
    return {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32,
            "num_hidden_layers": layers}


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
        **_tiny_transformer(layers=2),
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


def _save_depth_checkpoint(model: torch.nn.Module, directory: Path, image_size: int,
                           multiple_of: int) -> Path:
    """Save a tiny depth model (re-initialised by :func:`_lively`) with the
    ``DPTImageProcessor`` DPT and Depth Anything checkpoints both ship: a square resize to
    ``image_size`` (a multiple of ``multiple_of``), no aspect keeping, no padding."""
    from transformers import DPTImageProcessor

    _lively(model).eval().save_pretrained(directory)
    DPTImageProcessor(
        size={"height": image_size, "width": image_size}, keep_aspect_ratio=False,
        ensure_multiple_of=multiple_of, do_pad=False,
    ).save_pretrained(directory)
    return Path(directory)


#: the DPT neck (reassemble + fusion) both tiny depth models share
_TINY_DPT_NECK = {"neck_hidden_sizes": [8, 8, 8, 8], "fusion_hidden_size": 8,
                  "reassemble_factors": [4, 2, 1, 0.5]}


def tiny_dpt(directory: Path, image_size: int = 32) -> Path:
    """DPT (MiDaS-style) depth model + DPTImageProcessor."""
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(SEED)
    cfg = DPTConfig(
        image_size=image_size, patch_size=8, **_tiny_transformer(layers=4),
        backbone_out_indices=[0, 1, 2, 3], head_in_index=-1, is_hybrid=False, **_TINY_DPT_NECK,
    )
    return _save_depth_checkpoint(DPTForDepthEstimation(cfg), directory, image_size, 8)


def tiny_depth_anything(directory: Path, image_size: int = 28) -> Path:
    """Depth Anything (DINOv2 backbone) + DPTImageProcessor."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(SEED)
    backbone = Dinov2Config(
        image_size=image_size, patch_size=7, **_tiny_transformer(layers=4),
        out_indices=[1, 2, 3, 4], apply_layernorm=True, reshape_hidden_states=False,
    )
    cfg = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=16, patch_size=7, head_hidden_size=8,
        **_TINY_DPT_NECK,
    )
    return _save_depth_checkpoint(DepthAnythingForDepthEstimation(cfg), directory, image_size, 7)


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
        image_size=image_size, patch_size=7, **_tiny_transformer(layers=2),
    )
    Dinov2Model(cfg).eval().save_pretrained(directory)
    BitImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(directory)
    return Path(directory)


# ------------------------------------------------------------------ zero123

#: width of the two-level tiny UNets (Zero-1-to-3 and SDXL layouts)
_TINY_UNET = {"block_out_channels": (8, 16), "layers_per_block": 1, "attention_head_dim": 2,
              "norm_num_groups": 4}


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
        sample_size=size // 2, in_channels=8, out_channels=4, cross_attention_dim=embed,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        **_TINY_UNET,
    )
    vision = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            image_size=size, patch_size=8, projection_dim=embed, **_tiny_transformer(layers=2),
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

def tiny_sdxl(directory: Path, size: int = 64, variant: str | None = None,
              scheduler: str = "euler", seed: int = SEED) -> Path:
    """A StableDiffusionXL checkpoint as published (``model_index.json`` class
    ``StableDiffusionXLPipeline``; two CLIP text encoders, text_time UNet, VAE);
    ``variant="fp16"`` writes ``*.fp16.safetensors`` weight files (still fp32 data).
    ``scheduler="euler_ancestral_trailing"`` is stabilityai/sdxl-turbo's scheduler."""
    from diffusers import (
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    directory = Path(directory)
    torch.manual_seed(seed)
    unet = _tiny_sdxl_unet(size)
    te1 = CLIPTextModel(_clip_text_config())
    te2 = CLIPTextModelWithProjection(_clip_text_config(projection_dim=16))
    tok = tiny_clip_tokenizer(directory / "_tok")
    common = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
    if scheduler == "euler_ancestral_trailing":
        sched = EulerAncestralDiscreteScheduler(**common, timestep_spacing="trailing")
    else:
        sched = EulerDiscreteScheduler(**common, timestep_spacing="leading", steps_offset=1)
    torch.manual_seed(seed)
    pipe = StableDiffusionXLPipeline(
        vae=tiny_vae(), text_encoder=te1, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok,
        unet=unet, scheduler=sched, force_zeros_for_empty_prompt=True,
    )
    pipe.save_pretrained(directory, variant=variant)
    return directory


def tiny_sdxl_turbo(directory: Path) -> Path:
    """stabilityai/sdxl-turbo's layout: SDXL with EulerAncestral "trailing" scheduling."""
    return tiny_sdxl(directory, scheduler="euler_ancestral_trailing")


def tiny_sdxl_both_variants(directory: Path) -> Path:
    """SDXL base's layout: fp32 files and ``*.fp16.safetensors`` side by side. The fp16
    files hold *other* random weights (seed + 1) so a test can tell which were loaded."""
    tiny_sdxl(directory)
    return tiny_sdxl(directory, variant="fp16", seed=SEED + 1)


def _tiny_sdxl_unet(size: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=size // 2, in_channels=4, out_channels=4, **_TINY_UNET,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=4,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 4 + 16,
        cross_attention_dim=32,
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

REMOTE_CODE = Path(__file__).parent / "remote_code"

#: the dependency imports of the published birefnet.py that cannot be installed here
BIREFNET_UNINSTALLABLE_IMPORTS = (
    "from timm.models.layers import DropPath, to_2tuple, trunc_normal_\n"
    "from torchvision.models import vgg16, vgg16_bn, resnet50\n"
)


def _remote_checkpoint(directory: Path, code: str, config: dict, model_file: str,
                       extra_imports: str = "") -> Path:
    """Copy the stand-in remote code, write ``config.json`` as published, instantiate the
    class through transformers' dynamic-module loader and save ``model.safetensors``."""
    import shutil

    from safetensors.torch import save_file
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for src in (REMOTE_CODE / code).glob("*.py"):
        shutil.copy(src, directory / src.name)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    cfg_mod, cfg_cls = config["auto_map"]["AutoConfig"].split(".")
    model_mod, model_cls = config["auto_map"]["AutoModelForImageSegmentation"].split(".")
    config_class = get_class_from_dynamic_module(f"{cfg_mod}.{cfg_cls}", str(directory))
    model_class = get_class_from_dynamic_module(f"{model_mod}.{model_cls}", str(directory))
    kwargs = {k: v for k, v in config.items() if not k.startswith("_") and k not in
              ("architectures", "auto_map", "custom_pipelines", "model_type", "torch_dtype",
               "transformers_version")}
    torch.manual_seed(SEED)
    model = model_class(config=config_class(**kwargs)).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / model_file), metadata={"format": "pt"})
    if extra_imports:  # the published file's full dependency list (after saving weights)
        path = directory / f"{model_mod}.py"
        text = path.read_text()
        anchor = "from transformers import PreTrainedModel\n"
        path.write_text(text.replace(anchor, extra_imports + anchor, 1))
    return directory


def tiny_rmbg14(directory: Path) -> Path:
    """briaai/RMBG-1.4: ``MyConfig.py`` + ``briarmbg.py`` remote code, ``config.json`` with
    its ``auto_map``, ``model.safetensors`` and the published ``preprocessor_config.json``."""
    directory = _remote_checkpoint(directory, "rmbg14", {
        "_name_or_path": "briaai/RMBG-1.4",
        "architectures": ["BriaRMBG"],
        "auto_map": {"AutoConfig": "MyConfig.RMBGConfig",
                     "AutoModelForImageSegmentation": "briarmbg.BriaRMBG"},
        "custom_pipelines": {"image-segmentation": {
            "impl": "MyPipe.RMBGPipe", "pt": ["AutoModelForImageSegmentation"], "tf": [],
            "type": "image"}},
        "in_ch": 3,
        "model_type": "SegformerForSemanticSegmentation",
        "out_ch": 1,
        "torch_dtype": "float32",
    }, "model.safetensors")
    (directory / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_pad": False, "do_rescale": True, "do_resize": True,
        "feature_extractor_type": "ImageFeatureExtractionMixin",
        "image_mean": [0.5, 0.5, 0.5], "image_std": [1, 1, 1], "resample": 2,
        "rescale_factor": 0.00392156862745098, "size": {"width": 1024, "height": 1024},
    }, indent=2))
    return directory


def tiny_birefnet(directory: Path, name: str = "ZhengPeng7/BiRefNet",
                  full_imports: bool = False) -> Path:
    """ZhengPeng7/BiRefNet (and briaai/RMBG-2.0, the same code): ``BiRefNet_config.py`` +
    ``birefnet.py``, ``config.json`` with its ``auto_map``, ``model.safetensors``.
    ``full_imports`` adds the published file's timm/torchvision imports."""
    return _remote_checkpoint(directory, "birefnet", {
        "_name_or_path": name,
        "architectures": ["BiRefNet"],
        "auto_map": {"AutoConfig": "BiRefNet_config.BiRefNetConfig",
                     "AutoModelForImageSegmentation": "birefnet.BiRefNet"},
        "custom_pipelines": {"image-segmentation": {
            "pt": ["AutoModelForImageSegmentation"], "tf": [], "type": "image"}},
        "bb_pretrained": False,
    }, "model.safetensors", BIREFNET_UNINSTALLABLE_IMPORTS if full_imports else "")


def tiny_rmbg20(directory: Path) -> Path:
    """briaai/RMBG-2.0: BiRefNet's code and layout under BRIA's name."""
    return tiny_birefnet(directory, name="briaai/RMBG-2.0")


def tiny_birefnet_full_imports(directory: Path) -> Path:
    """BiRefNet whose ``birefnet.py`` imports timm and torchvision as the published one."""
    return tiny_birefnet(directory, full_imports=True)


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


# ------------------------------------------------------------------ Zero123++

def tiny_zero123plus_pipeline(directory: Path) -> Path:
    """The custom-pipeline directory (``pipeline.py``), as sudo-ai/zero123plus-pipeline."""
    import shutil

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(REMOTE_CODE / "zero123plus_pipeline" / "pipeline.py", directory / "pipeline.py")
    return directory


def tiny_zero123plus(directory: Path) -> Path:
    """sudo-ai/zero123plus-v1.2's layout: ``model_index.json`` (``Zero123PlusPipeline``,
    ``ramping_coefficients``), vae, text_encoder + tokenizer (CLIP), unet (4 channels),
    vision_encoder (CLIPVisionModelWithProjection), feature_extractor_clip (224 px CLIP
    normalisation), feature_extractor_vae (320 px, mean/std 0.5), scheduler
    (EulerAncestralDiscreteScheduler, v-prediction)."""
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import (
        CLIPImageProcessor,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    directory = Path(directory)
    hidden = 16
    torch.manual_seed(SEED)
    AutoencoderKL(  # four levels: vae_scale_factor 8, as the real one
        block_out_channels=(4, 4, 8, 8), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4, norm_num_groups=4, layers_per_block=1, sample_size=320,
    ).save_pretrained(directory / "vae")
    UNet2DConditionModel(  # attention only at 1/4 of the 120x80 latents (600 tokens)
        sample_size=40, in_channels=4, out_channels=4, block_out_channels=(8, 8, 16),
        layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"), cross_attention_dim=hidden,
        attention_head_dim=2, norm_num_groups=4,
    ).save_pretrained(directory / "unet")
    CLIPTextModel(_clip_text_config()).save_pretrained(directory / "text_encoder")
    tok = tiny_clip_tokenizer(directory / "tokenizer")
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        image_size=32, patch_size=8, projection_dim=hidden, **_tiny_transformer(layers=2),
    )).save_pretrained(directory / "vision_encoder")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
                       ).save_pretrained(directory / "feature_extractor_clip")
    CLIPImageProcessor(size={"shortest_edge": 320}, crop_size={"height": 320, "width": 320},
                       image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]
                       ).save_pretrained(directory / "feature_extractor_vae")
    EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
        prediction_type="v_prediction", timestep_spacing="linspace",
    ).save_pretrained(directory / "scheduler")
    ramp = torch.linspace(0.0, 1.0, tok.model_max_length).tolist()
    (directory / "model_index.json").write_text(json.dumps({
        "_class_name": "Zero123PlusPipeline",
        "_diffusers_version": "0.20.2",
        "feature_extractor_clip": ["transformers", "CLIPImageProcessor"],
        "feature_extractor_vae": ["transformers", "CLIPImageProcessor"],
        "ramping_coefficients": ramp,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "vision_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    }, indent=2))
    return directory


def tiny_zero123plus_pipeline_full_imports(directory: Path) -> Path:
    """The custom pipeline with the published file's ``from torchvision import transforms``."""
    directory = tiny_zero123plus_pipeline(directory)
    path = directory / "pipeline.py"
    text = path.read_text()
    anchor = "from PIL import Image\n"
    path.write_text(text.replace(anchor, anchor + "from torchvision import transforms\n", 1))
    return directory


# ------------------------------------------------------------------ SyncDreamer

def tiny_syncdreamer(directory: Path) -> Path:
    """A SyncDreamer checkout as its README leaves it: ``generate.py`` (the stand-in of
    tests/learned/remote_code/syncdreamer) and ``ckpt/syncdreamer-pretrain.ckpt``."""
    import shutil

    directory = Path(directory)
    (directory / "ckpt").mkdir(parents=True, exist_ok=True)
    shutil.copy(REMOTE_CODE / "syncdreamer" / "generate.py", directory / "generate.py")
    (directory / "ckpt" / "syncdreamer-pretrain.ckpt").write_bytes(b"stand-in checkpoint")
    return directory
