"""``bioscan5m push``: upload a saved model folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse

from bioscan5m.cli import _types as t


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a model folder (from pretrain or finetune) to the Hugging Face Hub",
        description=(
            "Create a model repository on the Hugging Face Hub (or keep it when it exists) and upload a model "
            "folder written by 'bioscan5m pretrain' or 'bioscan5m finetune' in one commit: weights, config, "
            "tokenizer files (transformers' AutoTokenizer loads them), the model card README.md, metrics. "
            "Training checkpoints are left out. Needs a Hub access token with write permission: --token, the "
            "HF_TOKEN variable, or 'hf auth login'."
        ),
        epilog="example: bioscan5m push --model runs/8-4-4 --repo my-lab/barcodebert-8-4-4 --private",
    )
    parser.add_argument("--model", required=True, type=t.existing_folder, metavar="DIR",
                        help="the model folder to upload")
    parser.add_argument("--repo", required=True, metavar="ID", help="the repository, as owner/name")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--token", metavar="TOKEN", help="Hub access token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--endpoint", metavar="URL",
                        help="another Hub server (default: https://huggingface.co, or HF_ENDPOINT)")
    parser.add_argument("--message", metavar="TEXT", help="commit message (default: 'Upload DIR with bioscan5m')")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bioscan5m.models.hub import push_model

    url = push_model(args.model, args.repo, private=args.private, token=args.token, endpoint=args.endpoint,
                     commit_message=args.message)
    print(f"uploaded {args.model} to {args.repo}: {url}")
    return 0
