import math

from raycv.training.early_stopping import EarlyStopping


def feed(stopper, scores):
    improved = [stopper.update(s, i) for i, s in enumerate(scores)]
    return improved


def test_stops_after_patience_epochs_without_improvement():
    s = EarlyStopping(mode="max", patience=2)
    improved = feed(s, [0.1, 0.3, 0.2, 0.25])
    assert improved == [True, True, False, False]
    assert s.stopped and s.best == 0.3 and s.best_epoch == 1


def test_min_delta_ignores_tiny_gains():
    s = EarlyStopping(mode="max", patience=3, min_delta=0.01)
    feed(s, [0.5, 0.505, 0.509, 0.52])
    assert s.best == 0.52 and s.best_epoch == 3 and not s.stopped


def test_min_mode_for_losses():
    s = EarlyStopping(mode="min", patience=1)
    feed(s, [1.0, 0.8, 0.9])
    assert s.best == 0.8 and s.stopped


def test_baseline_must_be_beaten_by_min_delta():
    s = EarlyStopping(mode="max", patience=3, min_delta=0.0005, baseline=0.40)
    feed(s, [0.40, 0.4004, 0.39])
    assert s.best is None and s.stopped  # stage 2 never beat stage 1: fall back
    s = EarlyStopping(mode="max", patience=3, min_delta=0.0005, baseline=0.40)
    feed(s, [0.40, 0.4006])
    assert s.best == 0.4006 and s.best_epoch == 1


def test_nan_is_never_an_improvement():
    s = EarlyStopping(mode="max", patience=2)
    feed(s, [math.nan, 0.2, math.nan, math.nan])
    assert s.best == 0.2 and s.stopped
