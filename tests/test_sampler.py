"""The data stream: progressive schedule, per-rank sharding, and resumability."""
import pytest

from ppir.data.sampler import IterationBatchSampler, ProgressiveSchedule
from ppir.errors import ConfigError

SIDD = ProgressiveSchedule([92000, 64000, 48000, 36000, 36000, 24000],
                           [128, 160, 192, 256, 320, 384], [8, 5, 4, 2, 1, 1])


@pytest.mark.parametrize("iteration, expected", [
    (1, (128, 8)), (92000, (128, 8)), (92001, (160, 5)), (156000, (160, 5)), (156001, (192, 4)),
    (204001, (256, 2)), (240001, (320, 1)), (276001, (384, 1)), (300000, (384, 1)), (400000, (384, 1))])
def test_progressive_schedule_matches_official_milestones(iteration, expected):
    """Stage j covers (sum(iters[:j]), sum(iters[:j+1])] as in the official train.py."""
    assert SIDD.at(iteration) == expected


def test_samples_before_counts_every_iteration():
    sched = ProgressiveSchedule([3, 2], [32, 48], [4, 2])
    sizes = [sched.at(i)[1] for i in range(1, 10)]
    for it in range(1, 10):
        assert sched.samples_before(it) == sum(sizes[:it - 1])


def test_schedule_lengths_must_agree():
    with pytest.raises(ConfigError, match="same"):
        ProgressiveSchedule([1, 2], [32], [4, 2])


def batches(**kw):
    return list(IterationBatchSampler(**kw))


def test_batches_follow_the_schedule_and_seeds_differ():
    sched = ProgressiveSchedule([2, 2], [32, 48], [3, 1])
    out = batches(num_samples=10, schedule=sched, total_iters=4, seed=1)
    assert [len(b) for b in out] == [3, 3, 1, 1]
    assert {k[1] for k in out[0]} == {32} and {k[1] for k in out[3]} == {48}
    seeds = [k[2] for b in out for k in b]
    assert len(set(seeds)) == len(seeds)


def test_resume_reproduces_the_same_stream():
    """Starting at iteration k yields exactly the batches an uninterrupted run yields after k."""
    sched = ProgressiveSchedule([5, 100], [32, 48], [3, 2])
    full = batches(num_samples=7, schedule=sched, total_iters=12, seed=5)
    for k in (1, 4, 5, 9):
        assert batches(num_samples=7, schedule=sched, total_iters=12, seed=5, start_iter=k) == full[k:]


def test_ranks_get_disjoint_shards_within_an_epoch():
    sched = ProgressiveSchedule.constant(32, 2)
    r0 = batches(num_samples=8, schedule=sched, total_iters=2, seed=3, rank=0, world_size=2)
    r1 = batches(num_samples=8, schedule=sched, total_iters=2, seed=3, rank=1, world_size=2)
    idx0 = {k[0] for b in r0 for k in b}
    idx1 = {k[0] for b in r1 for k in b}
    assert len(idx0) == 4 and len(idx1) == 4 and not idx0 & idx1


def test_every_sample_seen_once_per_epoch():
    sched = ProgressiveSchedule.constant(32, 3)
    out = batches(num_samples=9, schedule=sched, total_iters=6, seed=0)
    first, second = [k[0] for b in out[:3] for k in b], [k[0] for b in out[3:] for k in b]
    assert sorted(first) == list(range(9)) and sorted(second) == list(range(9)) and first != second
