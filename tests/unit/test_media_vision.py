"""The image models of models/vision on real photos (public domain and CC0) and a meme."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.errors import ModelError
from streams.media.vision import VideoDecoder, VisionModels
from tests.conftest import MEDIA


def test_photos_get_readable_tags_and_their_imagenet_labels(vision_models: VisionModels) -> None:
    cat = vision_models.analyse([(MEDIA / "chelsea.jpg").read_bytes(), (MEDIA / "coffee.jpg").read_bytes()])
    assert cat[0].tags[0]["tag"] in ("cat", "animal") and "cat" in {t["tag"] for t in cat[0].tags}
    assert "cat" in cat[0].labels[0]["label"]
    assert cat[1].tags[0]["tag"] == "drink"
    assert all(0 <= t["score"] <= 1 for f in cat for t in f.tags)


def test_ordinary_photos_score_low_on_nsfw(vision_models: VisionModels) -> None:
    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg", "astronaut.jpg", "meme.png"):
        assert vision_models.analyse([(MEDIA / name).read_bytes()])[0].nsfw < 0.2, name


def test_the_text_in_a_meme_is_read_and_photos_without_text_give_none(vision_models: VisionModels) -> None:
    meme = vision_models.analyse([(MEDIA / "meme.png").read_bytes()])[0]
    assert meme.text.lower().split("\n") == ["monday morning mood", "you are a stupid idiot"]
    photos = vision_models.analyse([(MEDIA / n).read_bytes() for n in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")])
    assert [p.text for p in photos] == ["", "", ""]
    assert set(meme.seconds) == {"nsfw", "tags", "ocr", "faces"}


def test_people_are_counted_never_described(vision_models: VisionModels) -> None:
    names = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg", "meme.png")
    found = vision_models.analyse([(MEDIA / n).read_bytes() for n in names])
    assert [f.people for f in found] == [1, 0, 0, 0, 0]


def test_a_clip_is_analysed_on_keyframes_spread_over_it(vision_models: VisionModels) -> None:
    # clip.mp4: 2 s each of the cat, the meme and the astronaut.
    clip = vision_models.analyse_video((MEDIA / "clip.mp4").read_bytes(), 6, 40_000_000)
    assert not isinstance(clip, str)
    assert clip.frames == 6 and clip.duration_s == 6.0 and (clip.width, clip.height) == (320, 240)
    assert "cat" in {t["tag"] for t in clip.tags}
    assert "stupid idiot" in clip.text.lower() and clip.people == 1


def test_a_clip_that_does_not_decode_says_so(vision_models: VisionModels) -> None:
    broken = (MEDIA / "clip.mp4").read_bytes()[:600]
    assert "decode" in str(vision_models.analyse_video(broken, 4, 40_000_000))


def test_a_clip_that_hangs_the_decoder_gets_an_error_and_the_next_one_a_fresh_decoder() -> None:
    decoder = VideoDecoder(timeout_s=0.001)  # less than any decode takes
    clip = (MEDIA / "clip.mp4").read_bytes()
    with pytest.raises(ValueError, match="took too long to decode"):
        decoder.frames(clip, 2, 40_000_000)
    decoder.timeout_s = 60
    frames, duration_s = decoder.frames(clip, 2, 40_000_000)
    assert len(frames) == 2 and duration_s == 6.0
    decoder.close()


def test_a_model_file_that_differs_from_the_manifest_stops_the_start(tmp_path: Path) -> None:
    folder = tmp_path / "vision"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"name": "vision", "version": "1", "sha256": {"tags.onnx": "00"}}')
    (folder / "tags.onnx").write_bytes(b"not the model")
    with pytest.raises(ModelError, match="does not match the sha256"):
        VisionModels(folder)
