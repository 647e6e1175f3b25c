"""`python -m lipjax.preprocess` tells "nothing usable" (1) from "some clips failed, the rest
written" (3, tests/test_preprocess.py) and from "all cropped" (0), and its --help says so."""

from __future__ import annotations

from lipjax.preprocess import crop_folder


def test_every_clip_failing_is_nothing_usable(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.mp4").write_text("garbage")
    (src / "b.mkv").write_text("garbage")
    status = crop_folder.main([str(src), str(tmp_path / "out"), "--workers", "1"])
    assert status == crop_folder.NOTHING_USABLE == 1
    assert "0 clips cropped, 0 already there, 2 failed" in capsys.readouterr().out


def test_no_video_is_nothing_usable_and_a_missing_folder_bad_input(tmp_path):
    assert crop_folder.main([str(tmp_path), str(tmp_path / "out")]) == 1
    assert crop_folder.main([str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2


def test_help_names_every_exit_status(capsys):
    try:
        crop_folder.main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    text = capsys.readouterr().out
    assert "Exit status: 0 every clip cropped; 3 some clips failed and the rest were" in text
    assert "1 nothing usable" in text and "|| [ $? -eq 3 ]" in text
