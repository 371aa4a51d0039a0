"""Reference statistics: computed once, cached by the source's identity, and invalidated when it changes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.evaluation.helpers import MeanPoolFeatures, dataset_section, noise_images, write_npy
from workbench.errors import UsageError
from workbench.evaluation import reference as ref
from workbench.evaluation.metrics import gaussian_stats


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def images_file(tmp_path):
    return write_npy(tmp_path / "ref.npy", noise_images(64))


def computed(monkeypatch) -> list[str]:
    """Records each time reference features are really computed."""
    calls: list[str] = []
    original = ref.compute_reference

    def spy(images, extractor, **kwargs):
        calls.append(images.description)
        return original(images, extractor, **kwargs)
    monkeypatch.setattr(ref, "compute_reference", spy)
    return calls


def test_statistics_are_those_of_the_dataset_features(images_file):
    extractor = MeanPoolFeatures()
    stats = ref.dataset_reference(dataset_section(images_file), extractor)
    features = extractor(ref.reference_images(dataset_section(images_file)).images).double().numpy()
    expected = gaussian_stats(features)
    np.testing.assert_allclose(stats.stats.mu, expected.mu)
    np.testing.assert_allclose(stats.stats.sigma, expected.sigma)
    assert (stats.stats.n, stats.channels, stats.image_size) == (64, 1, 16)


def test_the_second_use_reads_the_cache(images_file, cache_home, monkeypatch):
    calls = computed(monkeypatch)
    first = ref.dataset_reference(dataset_section(images_file), MeanPoolFeatures())
    second = ref.dataset_reference(dataset_section(images_file), MeanPoolFeatures())
    assert len(calls) == 1
    np.testing.assert_array_equal(first.stats.sigma, second.stats.sigma)
    assert second.features is not None and second.features.shape == (64, 16)
    [cached] = (cache_home / "ddpm-workbench" / "reference" / "mean-pool").glob("*.npz")
    assert cached.name.startswith("npy-1x16px-")


def test_a_changed_source_invalidates_the_cache(images_file, monkeypatch):
    calls = computed(monkeypatch)
    before = ref.dataset_reference(dataset_section(images_file), MeanPoolFeatures())
    write_npy(images_file, noise_images(64, seed=1))  # same name, size and shape; other pictures
    after = ref.dataset_reference(dataset_section(images_file), MeanPoolFeatures())
    assert len(calls) == 2
    assert not np.allclose(before.stats.mu, after.stats.mu)


def test_another_limit_or_extractor_version_is_another_entry(images_file, monkeypatch):
    calls = computed(monkeypatch)
    ref.dataset_reference(dataset_section(images_file), MeanPoolFeatures())
    ref.dataset_reference(dataset_section(images_file, "dataset.limit=32"), MeanPoolFeatures())
    newer = MeanPoolFeatures()
    newer.version = "2"
    ref.dataset_reference(dataset_section(images_file), newer)
    ref.dataset_reference(dataset_section(images_file), MeanPoolFeatures())
    assert len(calls) == 3


def test_a_cache_that_cannot_be_written_is_a_note_not_an_error(images_file, cache_home, monkeypatch):
    cache_home.mkdir()
    (cache_home / "ddpm-workbench").write_text("a file where the cache folder should be")
    notes: list[str] = []
    stats = ref.dataset_reference(dataset_section(images_file), MeanPoolFeatures(), on_note=notes.append)
    assert stats.stats.n == 64
    assert any("could not cache" in n for n in notes)


def test_a_damaged_cache_entry_is_recomputed(images_file, cache_home, monkeypatch):
    ref.dataset_reference(dataset_section(images_file), MeanPoolFeatures())
    [cached] = (cache_home / "ddpm-workbench" / "reference" / "mean-pool").glob("*.npz")
    cached.write_bytes(b"not a zip")
    calls = computed(monkeypatch)
    ref.dataset_reference(dataset_section(images_file), MeanPoolFeatures())
    assert len(calls) == 1


def test_precomputed_statistics_in_pytorch_fids_format_load(tmp_path):
    mu, sigma = np.arange(16.0), np.eye(16)
    np.savez(tmp_path / "stats.npz", mu=mu, sigma=sigma)
    loaded = ref.load_reference_npz(tmp_path / "stats.npz", MeanPoolFeatures())
    np.testing.assert_array_equal(loaded.stats.mu, mu)
    assert loaded.features is None and loaded.channels is None


def test_saved_statistics_load_back(images_file, tmp_path):
    stats = ref.dataset_reference(dataset_section(images_file), MeanPoolFeatures())
    ref.save_reference_npz(stats, tmp_path / "saved.npz")
    loaded = ref.load_reference_npz(tmp_path / "saved.npz", MeanPoolFeatures())
    np.testing.assert_array_equal(loaded.stats.sigma, stats.stats.sigma)
    assert (loaded.channels, loaded.image_size, loaded.extractor) == (1, 16, "mean-pool")


@pytest.mark.parametrize("arrays, message", [
    ({"mu": np.zeros(8), "sigma": np.eye(8)}, "8-d statistics"),
    ({"mean": np.zeros(16)}, "no 'mu' and 'sigma'"),
    ({"mu": np.zeros(16), "sigma": np.zeros(16)}, "are not (D,) and (D, D)"),
    ({"mu": np.zeros(16), "sigma": np.eye(16), "extractor": np.str_("inception")}, "--extractor inception"),
])
def test_unusable_statistics_files_are_one_line(tmp_path, arrays, message):
    np.savez(tmp_path / "stats.npz", **arrays)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        ref.load_reference_npz(tmp_path / "stats.npz", MeanPoolFeatures())
    assert "\n" not in str(exc.value)
