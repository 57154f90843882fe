"""Configs as users bring them, written from each format's documentation or the source that writes
it (never a copied file), with another machine's paths (``D:\\...``, ``C:\\...``, ``/content/...``).

- ``WINDOWS_CONFIG``: sd-scripts' sectioned ``--config_file`` (docs/config_README-en.md) made on
  Windows, images as ``train_data_dir`` repeat folders;
- ``COLAB_TRAINING`` + ``COLAB_DATASET``: the two files hollowstrawberry's Lora_Trainer notebook
  writes (its section names, /content paths, the dataset config passed apart);
- ``EASY``: LoRA_Easy_Training_Scripts' grouped TOML (what its backend's utils/validation.py reads);
- ``GUI_SAVED``: a kohya_ss GUI saved config (its form keys), SD 1.5 LoKr with Prodigy.

Used by tests/jobs/test_import_any.py and tests/e2e/test_import_e2e.py.
"""

from __future__ import annotations

from typing import Any

WINDOWS_CONFIG: dict[str, Any] = {
    "model_arguments": {
        "pretrained_model_name_or_path": "D:\\models\\v1-5-pruned-emaonly.safetensors",
        "vae": "D:\\models\\vae-ft-mse-840000.safetensors",
    },
    "additional_network_arguments": {
        "network_module": "networks.lora",
        "network_dim": 32,
        "network_alpha": 16,
    },
    "optimizer_arguments": {"optimizer_type": "AdamW", "learning_rate": 1e-4},
    "training_arguments": {
        "output_dir": "D:\\lora\\output",
        "output_name": "zengxin",
        "logging_dir": "D:\\lora\\log",
        "log_with": "tensorboard",
        "max_train_epochs": 10,
        "train_data_dir": "D:\\lora\\img",
        "resolution": "512,512",
        "train_batch_size": 2,
    },
}

COLAB_TRAINING: dict[str, Any] = {
    "model_arguments": {
        "pretrained_model_name_or_path": "/content/sd-v1-5-pruned-noema-fp16.safetensors"
    },
    "network_arguments": {
        "unet_lr": 5e-4,
        "text_encoder_lr": 1e-4,
        "network_dim": 16,
        "network_alpha": 8,
        "network_module": "networks.lora",
        "network_args": ["conv_dim=8", "conv_alpha=4"],
    },
    "optimizer_arguments": {
        "learning_rate": 5e-4,
        "lr_scheduler": "cosine_with_restarts",
        "lr_scheduler_num_cycles": 3,
        "lr_warmup_steps": 30,
        "optimizer_type": "AdamW8bit",
        "optimizer_args": ["weight_decay=0.1", "betas=[0.9,0.99]"],
    },
    "training_arguments": {
        "max_train_epochs": 10,
        "save_every_n_epochs": 1,
        "save_last_n_epochs": 10,
        "train_batch_size": 2,
        "clip_skip": 2,
        "min_snr_gamma": 5.0,
        "seed": 42,
        "max_token_length": 225,
        "xformers": True,
        "lowram": True,
        "max_data_loader_n_workers": 8,
        "persistent_data_loader_workers": True,
        "save_precision": "fp16",
        "mixed_precision": "fp16",
        "output_dir": "/content/drive/MyDrive/Loras/zengxin/output",
        "logging_dir": "/content/drive/MyDrive/Loras/_logs",
        "output_name": "zengxin",
        "log_prefix": "zengxin",
        "dataset_config": "/content/drive/MyDrive/Loras/zengxin/dataset_config.toml",
    },
    "saving_arguments": {"save_model_as": "safetensors"},
    "dreambooth_arguments": {"prior_loss_weight": 1.0},
    "dataset_arguments": {"cache_latents": True},
}
COLAB_DATASET: dict[str, Any] = {
    "general": {
        "resolution": 512,
        "shuffle_caption": True,
        "keep_tokens": 1,
        "caption_extension": ".txt",
        "enable_bucket": True,
        "bucket_reso_steps": 64,
        "min_bucket_reso": 256,
        "max_bucket_reso": 1024,
    },
    "datasets": [
        {
            "subsets": [
                {
                    "num_repeats": 10,
                    "image_dir": "/content/drive/MyDrive/Loras/zengxin/dataset",
                }
            ]
        }
    ],
}

EASY = {
    "subsets": [
        {
            "name": "paintings",
            "image_dir": "C:\\Users\\me\\lora\\20_zengxin oilpaint",
            "num_repeats": 20,
            "caption_extension": ".txt",
            "shuffle_caption": True,
            "flip_aug": False,
        }
    ],
    "train_mode": {"train_mode": "lora"},
    "general_args": {
        "args": {
            "pretrained_model_name_or_path": "C:\\models\\sd_xl_base_1.0.safetensors",
            "sdxl": True,
            "mixed_precision": "bf16",
            "gradient_checkpointing": True,
            "seed": 23,
            "max_train_epochs": 8,
            "cache_latents": True,
            "xformers": True,
            "max_token_length": 0,
        },
        "dataset_args": {"resolution": 1024, "batch_size": 2},
    },
    "network_args": {
        "args": {
            "network_dim": 16,
            "network_alpha": 8.0,
            "network_args": {"algo": "locon", "conv_dim": 8, "conv_alpha": 4, "preset": ""},
        }
    },
    "optimizer_args": {
        "args": {
            "optimizer_type": "AdamW",
            "lr_scheduler": "cosine",
            "learning_rate": 1e-4,
            "warmup_ratio": 0.05,
            "max_grad_norm": 1.0,
            "optimizer_args": {"weight_decay": "0.1", "betas": "0.9,0.99"},
        }
    },
    "saving_args": {
        "args": {
            "output_dir": "C:\\lora\\output",
            "output_name": "zengxin-xl",
            "save_precision": "fp16",
            "save_model_as": "safetensors",
            "save_every_n_epochs": 2,
        }
    },
    "bucket_args": {
        "dataset_args": {
            "enable_bucket": True,
            "min_bucket_reso": 512,
            "max_bucket_reso": 2048,
            "bucket_reso_steps": 64,
        }
    },
    "noise_args": {"args": {"noise_offset": 0.0357}},
    "logging_args": {"args": {}},
}

GUI_SAVED: dict[str, Any] = {
    "LoRA_type": "LyCORIS/LoKr",
    "pretrained_model_name_or_path": "D:/models/v1-5-pruned-emaonly.safetensors",
    "train_data_dir": "D:/lora/img",
    "output_dir": "D:/lora/model",
    "output_name": "zengxin",
    "network_dim": 100000,
    "network_alpha": 1,
    "factor": 8,
    "optimizer": "Prodigy",
    "learning_rate": 1,
    "lr_scheduler": "cosine_with_restarts",
    "max_resolution": "512,512",
    "train_batch_size": 2,
    "epoch": 10,
    "save_every_n_epochs": 2,
    "sample_every_n_epochs": 2,
    "sample_prompts": "zengxin oilpaint, a harbour --w 512 --h 512",
    "sample_sampler": "euler_a",
}
