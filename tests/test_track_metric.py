"""``val/track_top1``: the batches carry each row's track, the metric answers per
track, and under DDP it gathers every process's rows before answering."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from classifier_training.config import load_data_config
from classifier_training.core.tracks import answer_tracks
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.models.track_metric import TrackTop1
from classifier_training.synthetic import SynthConfig, generate_dataset

NAMES = ["", "13", "18"]
# Track 0 (truth 13): two weak frames for 13 and one strong frame for 18; track 1
# (truth 18): one frame for 18; track 2 (truth ""): illegible.
ROWS = [
    # track, truth, probabilities
    (0, 1, [0.0, 0.6, 0.4]),
    (1, 2, [0.1, 0.2, 0.7]),
    (0, 1, [0.0, 0.6, 0.4]),
    (2, 0, [0.8, 0.1, 0.1]),
    (0, 1, [0.0, 0.05, 0.95]),
]


def _update(metric: TrackTop1, rows: list[tuple[int, int, list[float]]]) -> None:
    metric.update(
        torch.tensor([p for _, _, p in rows]),
        torch.tensor([g for g, _, _ in rows]),
        torch.tensor([t for _, t, _ in rows]),
    )


def test_track_top1_answers_each_track_once() -> None:
    metric = TrackTop1(NAMES)
    _update(metric, ROWS[:2])
    _update(metric, ROWS[2:])
    # logprob on track 0: log .6 + log .6 + log .05 < log .4 + log .4 + log .95,
    # so 18 wins and track 0 is wrong; tracks 1 and 2 are right.
    assert float(metric.compute()) == pytest.approx(2 / 3)
    mean = TrackTop1(NAMES, rule="mean")
    _update(mean, ROWS)
    assert float(mean.compute()) == pytest.approx(2 / 3)  # (.6+.6+.05)/3 < .583
    vote = TrackTop1(NAMES, rule="vote")
    _update(vote, ROWS)
    assert float(vote.compute()) == 1.0  # 13 gets 1.2 of the votes, 18 gets 0.95
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert torch.isnan(metric.compute())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rank_main(rank: int, port: int, out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    try:
        metric = TrackTop1(NAMES, rule="vote")
        # Rank 0 sees track 0's two frames for 13, rank 1 its frame for 18: alone,
        # rank 1 would answer 18 (wrong) and rank 0 13 (right).
        mine = [ROWS[i] for i in ((0, 2, 3) if rank == 0 else (1, 4))]
        _update(metric, mine)
        value = float(metric.compute())
        alone = TrackTop1(NAMES, rule="vote", sync_on_compute=False)
        _update(alone, mine)
        local = float(alone.compute())
        Path(out, f"rank{rank}.json").write_text(json.dumps([value, local]))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two interpreters importing torch: ~30 s on a busy machine
def test_two_processes_gather_the_rows_of_a_split_track(tmp_path: Path) -> None:
    mp.spawn(_rank_main, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    values = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    single = TrackTop1(NAMES, rule="vote")
    _update(single, ROWS)
    expected = float(single.compute())
    assert [v for v, _ in values] == [expected, expected] == [1.0, 1.0]
    assert [local for _, local in values] == [1.0, 0.5]  # what no gather would give


def test_evaluation_batches_carry_each_rows_track_and_its_truth(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tracks"
    generate_dataset(
        SynthConfig(
            out_dir=root,
            per_class=2,
            image_size=24,
            classes=("7", "23", ""),
            tracks=True,
            track_frames_range=(3, 5),
            workers=1,
        )
    )
    values = {"data_root": root, "image_size": 24, "batch_size": 4, "num_workers": 0}
    grouped = ImageFolderDataModule(
        load_data_config({**values, "group_key": "track_id"}), arch="resnet18"
    )
    grouped.setup("fit")
    assert grouped.group_key == "track_id"
    names = grouped.class_names
    for split in ("val", "test"):
        ids = grouped.groups(split)
        samples = grouped.split_samples(split)
        batches = list(
            grouped.val_dataloader() if split == "val" else grouped.test_dataloader()
        )
        tracks = torch.cat([b["groups"] for b in batches]).tolist()
        truths = torch.cat([b["group_labels"] for b in batches]).tolist()
        first_seen = list(dict.fromkeys(ids))
        assert tracks == [first_seen.index(i) for i in ids]
        for track, truth in zip(ids, truths, strict=True):
            labels = {s.label for s, t in zip(samples, ids, strict=True) if t == track}
            assert names[truth] in labels
            assert names[truth] != "" or labels == {""}
    assert "groups" not in next(iter(grouped.train_dataloader()))

    plain = ImageFolderDataModule(load_data_config(values), arch="resnet18")
    plain.setup("fit")
    assert plain.group_key is None
    assert "groups" not in next(iter(plain.val_dataloader()))


def test_the_metric_agrees_with_answer_tracks() -> None:
    probs = torch.softmax(
        torch.randn(40, 3, generator=torch.Generator().manual_seed(0)), 1
    )
    groups = torch.arange(40) % 7
    truths = groups % 3
    metric = TrackTop1(NAMES)
    metric.update(probs[:25], groups[:25], truths[:25])
    metric.update(probs[25:], groups[25:], truths[25:])
    answers = answer_tracks(
        probs.double().numpy(), NAMES, [str(g) for g in groups.tolist()]
    )
    right = sum(answers[str(g)].label == NAMES[g % 3] for g in range(7))
    assert float(metric.compute()) == pytest.approx(right / 7)
