"""CLIBD model pieces: InfoNCE loss, all-gather equivalence, encoders, LoRA/freeze, save/load, augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bioscan5m.errors import BioscanError
from bioscan5m.models.image import AUGMENT_DRAWS, clibd_augment, clibd_image_transforms, prepare_image
from bioscan5m.models.multimodal import (
    INIT_LOGIT_SCALE,
    MAX_LOGIT_SCALE,
    LogitScale,
    MultimodalConfig,
    create_multimodal_model,
    load_multimodal_model,
)
from bioscan5m.models.text import MISSING_RANK_WORD, taxonomy_text, taxonomy_vocabulary
from bioscan5m.train.contrastive import contrastive_loss, pair_infonce

SENTENCES = ["Diptera Culicidae Aedes Aedes albopictus", "Lepidoptera Noctuidae Agrotis Agrotis ipsilon"]


# -- loss ------------------------------------------------------------------------------------------------
def _hand_infonce(a: list[list[float]], b: list[list[float]], scale: float) -> float:
    """Symmetric InfoNCE written out with Python floats."""
    n = len(a)
    logits = [[scale * sum(x * y for x, y in zip(a[i], b[j])) for j in range(n)] for i in range(n)]
    rows = [-(logits[i][i] - math.log(sum(math.exp(v) for v in logits[i]))) for i in range(n)]
    cols = [-(logits[j][j] - math.log(sum(math.exp(logits[i][j]) for i in range(n)))) for j in range(n)]
    return (sum(rows) / n + sum(cols) / n) / 2


def test_infonce_matches_hand_computation():
    a = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=1)
    b = F.normalize(torch.tensor([[0.8, 0.6], [1.0, 1.0], [-1.0, 2.0]]), dim=1)
    scale = torch.tensor(1 / 0.07)
    expected = _hand_infonce(a.tolist(), b.tolist(), float(scale))
    assert float(pair_infonce(a, b, scale)) == pytest.approx(expected, rel=1e-6)
    # Three modalities: the mean of the three pair losses.
    c = F.normalize(torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), dim=1)
    loss, pairs = contrastive_loss({"image": a, "dna": b, "text": c}, scale)
    hand = [_hand_infonce(x.tolist(), y.tolist(), float(scale)) for x, y in ((a, b), (a, c), (b, c))]
    assert sorted(pairs) == ["dna-text", "image-dna", "image-text"]
    assert float(loss) == pytest.approx(sum(hand) / 3, rel=1e-6)


def test_masked_rows_leave_only_their_modality_pairs():
    torch.manual_seed(0)
    a, b, c = (F.normalize(torch.randn(5, 4), dim=1) for _ in range(3))
    text_mask = torch.tensor([True, False, True, True, False])
    scale = torch.tensor(10.0)
    loss, pairs = contrastive_loss({"image": a, "dna": b, "text": c}, scale, {"text": text_mask})
    assert float(pairs["image-dna"]) == pytest.approx(float(pair_infonce(a, b, scale)))
    assert float(pairs["image-text"]) == pytest.approx(float(pair_infonce(a[text_mask], c[text_mask], scale)))
    # No labelled record at all: the text pairs drop out, the loss is image-DNA alone, text still gets a grad.
    c.requires_grad_(True)
    loss, pairs = contrastive_loss({"image": a, "dna": b, "text": c}, scale, {"text": torch.zeros(5, dtype=bool)})
    assert list(pairs) == ["image-dna"] and float(loss.detach()) == pytest.approx(float(pair_infonce(a, b, scale)))
    loss.backward()
    assert c.grad is not None and float(c.grad.abs().sum()) == 0.0


def test_logit_scale_starts_at_clip_value_and_is_clamped_at_100():
    scale = LogitScale()
    assert float(scale().detach()) == pytest.approx(1 / 0.07)
    assert INIT_LOGIT_SCALE == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        scale.log_scale.fill_(10.0)
    assert float(scale().detach()) == pytest.approx(100.0) and MAX_LOGIT_SCALE == pytest.approx(math.log(100))


def _gather_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    proj_a, proj_b = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)
    scale = LogitScale()
    x = torch.randn(8, 6)
    y = torch.randn(8, 6)
    mask = torch.tensor([True, True, False, True, True, False, True, True])
    rows = slice(rank * 4, rank * 4 + 4)
    feats = {"image": F.normalize(proj_a(x[rows]), dim=1), "dna": F.normalize(proj_b(y[rows]), dim=1),
             "text": F.normalize(proj_b(x[rows] + y[rows]), dim=1)}
    loss, _ = contrastive_loss(feats, scale(), {"text": mask[rows]})
    loss.backward()
    params = [*proj_a.parameters(), *proj_b.parameters(), *scale.parameters()]
    grads = []
    for p in params:  # what DDP does: average the gradients over ranks
        g = p.grad.clone()
        dist.all_reduce(g)
        grads.append(g / world)
    if rank == 0:
        torch.save({"loss": loss.detach(), "grads": grads}, out_file)
    dist.destroy_process_group()


@pytest.mark.slow
def test_gathered_loss_and_gradients_equal_single_process(tmp_path):
    import torch.multiprocessing as mp

    out_file = tmp_path / "gathered.pt"
    # spawn, not fork: a forked child can deadlock in the OpenMP pool that earlier tests started.
    mp.spawn(_gather_worker, args=(2, str(tmp_path / "init"), str(out_file)), nprocs=2, join=True)
    gathered = torch.load(out_file)

    torch.manual_seed(0)
    proj_a, proj_b = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)
    scale = LogitScale()
    x, y = torch.randn(8, 6), torch.randn(8, 6)
    mask = torch.tensor([True, True, False, True, True, False, True, True])
    feats = {"image": F.normalize(proj_a(x), dim=1), "dna": F.normalize(proj_b(y), dim=1),
             "text": F.normalize(proj_b(x + y), dim=1)}
    loss, _ = contrastive_loss(feats, scale(), {"text": mask})
    loss.backward()
    assert float(gathered["loss"]) == pytest.approx(float(loss.detach()), rel=1e-6)
    for mine, theirs in zip([*proj_a.parameters(), *proj_b.parameters(), *scale.parameters()], gathered["grads"]):
        torch.testing.assert_close(theirs, mine.grad, rtol=1e-5, atol=1e-7)


# -- text ------------------------------------------------------------------------------------------------
def test_taxonomy_text_placeholders_and_required_rank():
    full = {"order": "Diptera", "family": "Culicidae", "genus": "Aedes", "species": "Aedes albopictus"}
    assert taxonomy_text(full) == SENTENCES[0]
    partial = {"order": "Diptera", "family": "Culicidae", "genus": None, "species": ""}
    assert taxonomy_text(partial) == f"Diptera Culicidae {MISSING_RANK_WORD} {MISSING_RANK_WORD}"
    assert MISSING_RANK_WORD == "not_classified"
    assert taxonomy_text(partial, required="species") is None
    assert taxonomy_text(partial, required="family") == f"Diptera Culicidae {MISSING_RANK_WORD} {MISSING_RANK_WORD}"
    with pytest.raises(BioscanError, match="subfamily"):
        taxonomy_text(full, required="subfamily")


def test_offline_text_tokenizer_spells_unseen_names():
    _, _, _, _, tokenizer = create_multimodal_model("tiny", text_vocabulary=SENTENCES)
    assert tokenizer.tokenize(SENTENCES[0]) == ["diptera", "culicidae", "aedes", "aedes", "albopictus"]
    # A name not in the vocabulary is spelled letter by letter instead of becoming [UNK].
    assert tokenizer.tokenize("Zyx") == ["z", "##y", "##x"]
    assert "agrotis" in taxonomy_vocabulary(SENTENCES)


# -- model -----------------------------------------------------------------------------------------------
def _batch(dna_tokenizer, text_tokenizer, n=3, size=64):
    torch.manual_seed(1)
    dna = dna_tokenizer(["ACGT" * 40, "TTGACA" * 30, "ACGTNNACGT" * 20][:n], return_tensors="pt")
    text = text_tokenizer((SENTENCES * 2)[:n], padding=True, return_tensors="pt")
    return {"image": torch.randn(n, 3, size, size), "dna_input_ids": dna["input_ids"],
            "dna_attention_mask": dna["attention_mask"], "text_input_ids": text["input_ids"],
            "text_attention_mask": text["attention_mask"]}


def test_tiny_model_embeds_every_modality_normalised():
    model, train_tf, eval_tf, dna_tok, text_tok = create_multimodal_model("tiny", text_vocabulary=SENTENCES)
    out = model(_batch(dna_tok, text_tok))
    for modality in ("image", "dna", "text"):
        assert out[modality].shape == (3, 128)
        torch.testing.assert_close(out[modality].norm(dim=1), torch.ones(3))
    assert float(out["logit_scale"].detach()) == pytest.approx(1 / 0.07)
    image = Image.new("L", (17, 5), 128)  # greyscale, odd size, tiny
    assert train_tf(image).shape == eval_tf(image).shape == (3, 64, 64)


def test_image_dna_only_model_has_no_text_parts():
    model, _, _, _, text_tok = create_multimodal_model("tiny", modalities=("image", "dna"))
    assert model.modalities == ("image", "dna") and text_tok is None
    with pytest.raises(BioscanError, match="no text encoder"):
        model.encode_text(torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(BioscanError, match="unknown modality"):
        create_multimodal_model("tiny", modalities=("image", "sound"))


def test_freeze_and_lora_leave_the_right_parameters_trainable():
    pytest.importorskip("peft")
    model, *_ = create_multimodal_model("tiny", freeze=("dna",), lora=("image",), text_vocabulary=SENTENCES)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert not any(name.startswith("encoders.dna.") for name in trainable)
    image_trainable = {name for name in trainable if name.startswith("encoders.image.")}
    # LoRA: only the adapters of the 2 layers' query and value projections (A and B each) train.
    assert image_trainable and all("lora_" in name for name in image_trainable)
    assert len(image_trainable) == 2 * 2 * 2
    assert any(name.startswith("encoders.text.") for name in trainable)  # fully fine-tuned
    assert {"projections.image.weight", "projections.dna.weight", "logit_scale.log_scale"} <= trainable
    counts = model.trainable_parameter_counts()
    assert counts["dna"] == 0 and 0 < counts["image"] < 10_000
    with pytest.raises(BioscanError, match="both frozen and LoRA"):
        create_multimodal_model("tiny", freeze=("image",), lora=("image",))


def test_save_and_load_round_trip_with_lora(tmp_path):
    pytest.importorskip("peft")
    model, _, _, dna_tok, text_tok = create_multimodal_model("tiny", lora=("text",), text_vocabulary=SENTENCES)
    with torch.no_grad():  # make the adapters matter
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    model.save_pretrained(tmp_path / "clibd")
    loaded, _, _, dna_tok2, text_tok2 = load_multimodal_model(tmp_path / "clibd")
    assert dna_tok2 == dna_tok and text_tok2.tokenize(SENTENCES[1]) == text_tok.tokenize(SENTENCES[1])
    assert loaded.config.lora == ("text",) and loaded.config.image_size == 64
    batch = _batch(dna_tok, text_tok)
    model.eval(), loaded.eval()
    with torch.no_grad():
        before, after = model(batch), loaded(batch)
    for modality in ("image", "dna", "text"):
        torch.testing.assert_close(after[modality], before[modality])
    with pytest.raises(BioscanError, match="not a multimodal model directory"):
        load_multimodal_model(tmp_path)


def test_unknown_names_are_user_errors():
    with pytest.raises(BioscanError, match="unknown multimodal model"):
        create_multimodal_model("giant")
    with pytest.raises(BioscanError, match="unknown multimodal setting"):
        MultimodalConfig.from_dict({"image_model": "vit-tiny", "colour": "red"})
    with pytest.raises(BioscanError, match="text_required_rank must be one of order, family, genus, species"):
        create_multimodal_model("tiny", text_required_rank="subfamily")


# -- augmentation ------------------------------------------------------------------------------------------
def test_augment_identity_draws_and_flips_are_exact():
    image = torch.rand(1, 3, 8, 8)
    keep = torch.tensor([[1.0, 0.5, 0.5, 0.5, 0.9, 0.9, 0.5]])  # whole image, no flip, no rotation
    torch.testing.assert_close(clibd_augment(image, keep, 8), image, atol=1e-5, rtol=0)
    flip_both = torch.tensor([[1.0, 0.5, 0.5, 0.5, 0.1, 0.1, 0.5]])
    torch.testing.assert_close(clibd_augment(image, flip_both, 8), image.flip(2, 3), atol=1e-5, rtol=0)


def test_augment_is_a_function_of_the_draws():
    prepared = prepare_image(64)(Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 90, 3), np.uint8)))
    assert prepared.shape == (3, 73, 73) and prepared.dtype == torch.uint8
    draws = torch.rand(4, AUGMENT_DRAWS)
    batch = prepared[None].expand(4, -1, -1, -1)
    first, again = clibd_augment(batch, draws, 64), clibd_augment(batch, draws, 64)
    assert first.shape == (4, 3, 64, 64)
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first[0], first[1])
    train_tf, _ = clibd_image_transforms(64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert train_tf(Image.new("RGB", (3, 200))).shape == (3, 64, 64)


# -- real BIOSCAN crops ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_every_real_bioscan_image_goes_through_both_pipelines_and_embeds(shared_data):
    from bioscan5m.data.images import decode_image

    files = sorted(p for folder in ("bioscan1m_repo_images", "bioscan_imgfilter_images")
                   for p in (shared_data / folder).rglob("*.jpg"))
    assert len(files) == 826  # originals up to 2880 x 2160 px, crops down to 10 px on a side
    model, _, eval_tf, _, _ = create_multimodal_model("tiny", modalities=("image", "dna"))
    model.eval()
    prepare = prepare_image(model.config.image_size)
    torch.manual_seed(0)
    embeddings, augmented = [], []
    for start in range(0, len(files), 64):
        images = [decode_image(p.read_bytes(), where=str(p)) for p in files[start:start + 64]]
        prepared = torch.stack([prepare(image) for image in images])
        augmented.append(clibd_augment(prepared, torch.rand(len(images), AUGMENT_DRAWS), 64).shape)
        with torch.no_grad():
            embeddings.append(model.encode_image(torch.stack([eval_tf(image) for image in images])))
    embeddings = torch.cat(embeddings)
    assert embeddings.shape == (826, 128) and torch.isfinite(embeddings).all()
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(826))
    assert all(shape[1:] == (3, 64, 64) for shape in augmented)
    # Distinct specimens give distinct embeddings (no image collapsed to padding).
    assert len(torch.unique(embeddings.round(decimals=4), dim=0)) > 800


# -- training through the engine ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from bioscan5m.data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), 300, images=True, seed=5)


class _Killed(Exception):
    pass


def _align_run(root, out, *, kill_at=None, resume=False):
    from bioscan5m.train.contrastive_step import align, taxonomy_names
    from bioscan5m.train.engine import TrainConfig

    def on_step(step, model):
        if step == kill_at:
            raise _Killed

    config = TrainConfig(out_dir=out, steps=4, batch_size=4, lr=1e-3, schedule="cosine", save_every=2, seed=3,
                         log_every=1, resume=resume)
    torch.manual_seed(0)
    model = create_multimodal_model("tiny", text_vocabulary=taxonomy_names(root))[0]
    return align(root, config, model=model, on_step=on_step)


@pytest.mark.slow
def test_resume_after_a_kill_reproduces_the_uninterrupted_run(synthetic_root, tmp_path):
    import json

    from safetensors.torch import load_file

    _, straight = _align_run(synthetic_root, tmp_path / "straight")
    with pytest.raises(_Killed):
        _align_run(synthetic_root, tmp_path / "killed", kill_at=3)  # after the step-2 checkpoint
    _, resumed = _align_run(synthetic_root, tmp_path / "killed", resume=True)
    assert straight.steps == resumed.steps == 4
    first, second = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "killed" / "model.safetensors")
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    logs = [[json.loads(line)["loss"] for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()]
            for run in ("straight", "killed")]
    assert logs[0] == logs[1] and len(logs[0]) == 4  # the killed run's step-3 row was replaced
    trained = load_multimodal_model(tmp_path / "killed")[0]
    assert trained.config.image_size == 64 and trained.modalities == ("image", "dna", "text")


def test_alignment_batches_give_text_to_every_record_unless_a_rank_is_required(synthetic_root):
    from bioscan5m.data.records import load_records
    from bioscan5m.train.contrastive_step import (
        AlignmentCollate,
        AlignStep,
        alignment_dataset,
        taxonomy_names,
    )
    from bioscan5m.train.distributed import DistInfo
    from bioscan5m.train.engine import StepContext

    torch.manual_seed(0)
    model = create_multimodal_model("tiny", text_vocabulary=taxonomy_names(synthetic_root))[0]
    dataset = alignment_dataset(synthetic_root, model)
    assert len(dataset) == len(load_records(synthetic_root, split="pretrain+train"))
    rows = np.linspace(0, len(dataset) - 1, 12).astype(int)
    items = [dataset[i] for i in rows]
    batch = AlignmentCollate.for_model(model)(items)
    assert batch["text_mask"].all()  # as in CLIBD: missing names are written not_classified
    assert batch["text_input_ids"].shape == (12, 20)  # the authors' padded text length
    required = AlignmentCollate(model.modalities, model.dna_tokenizer, model.text_tokenizer, "species")(items)
    named = [isinstance(item["species"], str) for item in items]  # NaN where the record has none
    assert required["text_mask"].tolist() == named and any(named) and not all(named)
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (12, 3, 73, 73)
    assert batch["dna_mask"].all() and batch["dna_input_ids"].shape[1] <= model.dna_tokenizer.n_tokens
    step = AlignStep(64, model.config.image_mean, model.config.image_std)
    ctx = StepContext(0, 0, 0, rows, torch.device("cpu"), DistInfo(), 0)
    out = step(model, batch, ctx)
    assert torch.isfinite(out["loss"]) and out["samples"] == 12
    assert out["text_fraction"] == 1.0
    assert step(model, required, ctx)["text_fraction"] == pytest.approx(sum(named) / 12)
    # The same samples (same epoch and indices) are augmented identically: the loss repeats exactly.
    model.eval()
    with torch.no_grad():
        assert float(step(model, batch, ctx)["loss"]) == float(step(model, batch, ctx)["loss"])


def test_mae_backbone_sees_every_patch_and_embeds_the_same_each_call():
    from bioscan5m.models.hf_backbone import backbone_from_config

    mae = backbone_from_config({"model_type": "vit_mae", "hidden_size": 32, "num_hidden_layers": 1,
                                "num_attention_heads": 2, "intermediate_size": 64, "image_size": 32,
                                "patch_size": 8}).eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        first, second = (mae(pixel_values=pixels).last_hidden_state for _ in range(2))
    assert first.shape == (2, 1 + 16, 32)  # [CLS] + all 16 patches: nothing masked
    torch.testing.assert_close(first[:, 0], second[:, 0])  # MAE shuffles patch order, not the result
    torch.testing.assert_close(first[:, 1:].mean(1), second[:, 1:].mean(1))
