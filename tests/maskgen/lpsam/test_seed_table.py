"""scripts/seed_table.py: the seed tables of docs/lpsam.md from adaptation folders."""

import json
from pathlib import Path

from click.testing import CliRunner

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "seed_table.py"


def _adaptation(path: Path, myo: float, groups: int | None, unseen: float | None = None) -> Path:
    quality = lambda d: {"dice_mean": d}  # noqa: E731
    held = {"frames": 240, "held_out": 48} | ({"held_out_groups": groups} if groups is not None else {})
    report = {"heldout": {"latent": {"camus/LV": quality(0.93), "camus/myocardium": quality(myo)},
                          "box": {"camus/LV": quality(0.94), "camus/myocardium": quality(0.85)}},
              "data": {"datasets": {"camus": held}}}
    path.mkdir()
    (path / "report.json").write_text(json.dumps(report))
    if unseen is not None:
        (path / "unseen" / "busi").mkdir(parents=True)
        (path / "unseen" / "busi" / "score.json").write_text(json.dumps(
            {"groups": {"all": {"lpsam": {"best_dice": unseen}}}, "margin": {"lpsam_minus_best_baseline": 0.12}}))
    return path


def test_rows_mark_classes_under_the_aim_and_say_how_many_groups_are_held_out(script, tmp_path):
    a = _adaptation(tmp_path / "seed0", 0.812, 20, unseen=0.7)
    b = _adaptation(tmp_path / "seed1", 0.795, None)
    rows = script.heldout_rows([a, b])
    assert rows[2] == "| seed0 | 0.930 (0.940) | 0.812 (0.850) | camus 48 (20) |"
    assert rows[3] == "| seed1 | 0.930 (0.940) | **0.795** (0.850) | camus 48 |"   # under 0.80: bold
    unseen = script.unseen_rows([a, b])
    assert "| seed0 | 0.700 (+0.120) |" in unseen and "| seed1 | n/a |" in unseen


def test_test_phantom_rows_come_from_test_json_and_skip_folders_without_one(script, tmp_path):
    a = _adaptation(tmp_path / "seed0", 0.812, 20)
    b = _adaptation(tmp_path / "seed1", 0.795, 2)
    test = json.loads((a / "report.json").read_text())
    test["heldout"]["latent"]["camus/myocardium"]["dice_mean"] = 0.781
    test["data"]["datasets"]["camus"] = {"frames": 2400, "held_out": 2400, "held_out_groups": 100}
    (a / "test.json").write_text(json.dumps(test))
    rows = script.heldout_rows([a, b], "test.json")
    assert rows[0].endswith("| test frames (groups) |") and len(rows) == 5   # seed1 has no test.json
    assert rows[2] == "| seed0 | 0.930 (0.940) | **0.781** (0.850) | camus 2400 (100) |"
    out = CliRunner().invoke(script.main, [str(a), str(b)]).output
    assert "test phantom the adaptations never trained on" in out and "| seed1 | 0.930 (0.940) | **0.795**" in out
    assert script.heldout_rows([b], "test.json") == []


def test_rows_of_two_runs_with_the_same_seed_name_their_runs(script, tmp_path):
    (tmp_path / "default").mkdir()
    (tmp_path / "plain").mkdir()
    a = _adaptation(tmp_path / "default" / "seed0", 0.81, 2, unseen=0.7)
    b = _adaptation(tmp_path / "plain" / "seed0", 0.82, 2, unseen=0.6)
    rows = script.heldout_rows([a, b])
    assert rows[2].startswith("| default/seed0 |") and rows[3].startswith("| plain/seed0 |")
    assert "| plain/seed0 | 0.600 (+0.120) |" in script.unseen_rows([a, b])
    assert script.heldout_rows([a])[2].startswith("| seed0 |")


def test_cli_skips_unfinished_folders_and_refuses_when_none_is_finished(script, tmp_path):
    _adaptation(tmp_path / "seed0", 0.81, 20)
    (tmp_path / "seed1").mkdir()   # an adaptation still running: no report yet
    result = CliRunner().invoke(script.main, [str(tmp_path / "seed0"), str(tmp_path / "seed1")])
    assert result.exit_code == 0 and "| seed0 |" in result.output and "seed1" not in result.output
    result = CliRunner().invoke(script.main, [str(tmp_path / "seed1")])
    assert result.exit_code == 2 and "no finished adaptation" in result.output


def test_real_frames_get_their_own_table_with_how_many_frames_were_scored(script, tmp_path):
    a = _adaptation(tmp_path / "seed0", 0.81, 20, unseen=0.7)
    b = _adaptation(tmp_path / "seed1", 0.81, 20)
    (a / "real" / "ddti").mkdir(parents=True)
    (a / "real" / "ddti" / "score.json").write_text(json.dumps(
        {"frames_scored": 1, "groups": {"all": {"lpsam": {"best_dice": 0.602}}},
         "margin": {"lpsam_minus_best_baseline": -0.136}}))
    real = script.unseen_rows([a, b], "real", script.REAL_TITLE)
    assert real[1] == script.REAL_TITLE and "| seed0 | 0.602 (-0.136; 1) |" in real and "| seed1 | n/a |" in real
    out = CliRunner().invoke(script.main, [str(a), str(b)]).output
    assert out.index(script.UNSEEN_TITLE) < out.index(script.REAL_TITLE)
    assert "| ddti |" not in script.unseen_rows([a, b])[3]   # the unseen table lists busi only


def test_a_note_says_how_far_each_class_mean_can_move_by_the_draw_of_its_frames(script, tmp_path):
    a = _adaptation(tmp_path / "seed0", 0.79, 80)
    b = _adaptation(tmp_path / "seed1", 0.81, 80)
    assert not any(line.startswith("95% interval") for line in script.heldout_rows([a, b]))  # no std: no note
    for path, std in ((a, 0.156), (b, 0.168)):
        report = json.loads((path / "report.json").read_text())
        report["heldout"]["latent"]["camus/myocardium"] |= {"dice_std": std, "frames": 80}
        report["heldout"]["latent"]["camus/LV"] |= {"dice_std": 0.02, "frames": 400}
        (path / "report.json").write_text(json.dumps(report))
    note = script.heldout_rows([a, b])[-1]
    # 1.96 x 0.156 / sqrt(80) = 0.0342, 1.96 x 0.168 / sqrt(80) = 0.0368; LV the same in both rows
    assert note == ("95% interval of a cell's mean over its frames (1.96 x std / sqrt(frames), frames counted as "
                    "independent: narrower than the truth where frames share a patient): "
                    "camus/LV ±0.002, camus/myocardium ±0.034-0.037.")


def test_rows_put_the_click_before_the_box_where_the_report_has_it(script, tmp_path):
    a = _adaptation(tmp_path / "seed0", 0.812, 20)
    b = _adaptation(tmp_path / "seed1", 0.795, None)          # written before the click: box alone
    report = json.loads((a / "report.json").read_text())
    report["heldout"]["point"] = {"camus/LV": {"dice_mean": 0.936}, "camus/myocardium": {"dice_mean": 0.781}}
    (a / "report.json").write_text(json.dumps(report))
    rows = script.heldout_rows([a, b])
    assert rows[2] == "| seed0 | 0.930 (0.936 / 0.940) | 0.812 (0.781 / 0.850) | camus 48 (20) |"
    assert rows[3] == "| seed1 | 0.930 (0.940) | **0.795** (0.850) | camus 48 |"
    out = CliRunner().invoke(script.main, [str(a), str(b)]).output
    assert out.startswith("Held-out Dice, latent prompts (in brackets: one ground-truth click / the ground-truth box")


def test_fit_rows_set_training_frame_dice_beside_held_out_and_skip_older_reports(script, tmp_path):
    a = _adaptation(tmp_path / "seed0", 0.812, 20)
    b = _adaptation(tmp_path / "seed1", 0.795, 20)                  # written before training_fit
    report = json.loads((a / "report.json").read_text())
    report["training_fit"] = {"camus/LV": {"dice_mean": 0.95, "frames": 200},
                              "camus/myocardium": {"dice_mean": 0.9, "frames": 200}}
    (a / "report.json").write_text(json.dumps(report))
    rows = script.fit_rows([a, b])
    assert rows[-1] == "| seed0 | 0.950 (-0.020) | 0.900 (-0.088) | 200, 200 |" and len(rows) == 6
    assert script.fit_rows([b]) == []
    assert "own training frames" in CliRunner().invoke(script.main, [str(a), str(b)]).output
