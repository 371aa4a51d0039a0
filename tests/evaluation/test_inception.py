"""The Inception extractor loads pytorch-fid's FID network through the real loading code, from a file in
the real format (a torch-saved state dict), here with random weights since there is no network."""

from __future__ import annotations

import pytest
import torch

from workbench.evaluation import inception
from workbench.evaluation.inception import InceptionFeatures, WeightsError


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """pytorch-fid's FID Inception-v3 state dict (torchvision's Inception3 with 1008 classes and no aux
    logits: the FID blocks only change forward passes), randomly initialised, saved as the .pth is."""
    import torchvision

    torch.manual_seed(0)
    network = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    path = tmp_path_factory.mktemp("weights") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture
def no_hub_cache(tmp_path, monkeypatch):
    """An empty torch hub folder, no $DDPM_WORKBENCH_INCEPTION, and downloads that fail like offline ones."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)

    def offline(url, dst, *args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "hub" / "checkpoints"


def test_features_are_2048_d_and_grayscale_counts_as_three_equal_channels(random_weights, no_hub_cache):
    extractor = InceptionFeatures(str(random_weights))
    gray = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    with torch.inference_mode():
        from_gray = extractor(gray)
        from_rgb = extractor(gray.repeat(1, 3, 1, 1))
    assert from_gray.shape == (2, 2048)
    torch.testing.assert_close(from_gray, from_rgb)
    assert extractor.frechet_label == "FID"


def test_features_are_pytorch_fids_pool3_of_images_in_0_1(random_weights, no_hub_cache):
    """The same numbers pytorch-fid's own pipeline gives: its InceptionV3 on images scaled to [0, 1]."""
    from pytorch_fid.inception import InceptionV3

    state = torch.load(random_weights, weights_only=True)
    extractor = InceptionFeatures(str(random_weights))
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with inception._weights_from(state):
        reference = InceptionV3([3]).eval()
    with torch.inference_mode():
        torch.testing.assert_close(extractor(images), reference(images.float() / 255)[0].flatten(1))


def test_the_environment_variable_points_at_the_weights(random_weights, no_hub_cache, monkeypatch):
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(random_weights))
    assert InceptionFeatures().path == random_weights


def test_weights_in_pytorch_fids_cache_are_used_without_download(random_weights, no_hub_cache):
    no_hub_cache.mkdir(parents=True)
    (no_hub_cache / random_weights.name).write_bytes(random_weights.read_bytes())
    assert InceptionFeatures().path == no_hub_cache / random_weights.name


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_no_weights_offline_is_one_line_with_the_url_and_where_to_put_it(no_hub_cache):
    with pytest.raises(WeightsError) as exc:
        InceptionFeatures()
    text = one_line(exc)
    assert "could not be downloaded" in text and inception.weights_url() in text
    assert str(no_hub_cache / "pt_inception-2015-12-05-6726825d.pth") in text and "--inception" in text


def test_a_missing_given_file_is_one_line(no_hub_cache, tmp_path):
    with pytest.raises(WeightsError) as exc:
        InceptionFeatures(str(tmp_path / "nope.pth"))
    assert "not found" in one_line(exc) and inception.weights_url() in one_line(exc)


def test_a_truncated_file_is_one_line(random_weights, no_hub_cache, tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(random_weights.read_bytes()[:100_000])
    with pytest.raises(WeightsError) as exc:
        InceptionFeatures(str(truncated))
    assert "truncated or not a weights file" in one_line(exc)


def test_another_networks_weights_are_refused(no_hub_cache, tmp_path):
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), other)
    with pytest.raises(WeightsError) as exc:
        InceptionFeatures(str(other))
    assert "is not the FID Inception-v3 weights" in one_line(exc)


def test_a_pickle_that_runs_code_is_refused(no_hub_cache, tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"weights": torch.zeros(1), "payload": print}, evil)  # needs full pickle to load
    with pytest.raises(WeightsError):
        InceptionFeatures(str(evil))
