import dataclasses

import pytest

from nnlens.studies import profiles
from nnlens.studies.profiles import ProfileError


@pytest.mark.parametrize("study", list(profiles.studies()))
@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_every_study_loads_at_every_profile(study, profile):
    cfg = profiles.load(study, profile)
    assert dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, dataclasses.fields(cfg)[0].name, None)


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ProfileError, match="valid profiles: smoke, default, paper"):
        profiles.load("01", "huge")


def test_unknown_study_lists_valid_ones():
    with pytest.raises(ProfileError, match="valid studies: 01, 02, 03, 04, 05"):
        profiles.load("09", "default")


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ProfileError, match="unknown parameter 'epoch'.*valid parameters: .*epochs"):
        profiles.load("01", "default", epoch=3)


def test_wrong_type_says_what_is_expected():
    with pytest.raises(ProfileError, match="'epochs' must be int, got str"):
        profiles.load("01", "default", epochs="3")
    with pytest.raises(ProfileError, match="must be int, got bool"):
        profiles.load("01", "default", epochs=True)


def test_int_is_accepted_for_float_and_overrides_apply():
    cfg = profiles.load("01", "smoke", lr=1)
    assert cfg.lr == 1


def test_start_environment_wins(monkeypatch, tmp_path):
    assert profiles.start("default", str(tmp_path))[0] == "default"
    monkeypatch.setenv("NNLENS_PROFILE", "smoke")
    assert profiles.start("default", str(tmp_path))[0] == "smoke"
    monkeypatch.setenv("NNLENS_PROFILE", "nope")
    with pytest.raises(ProfileError, match="valid profiles"):
        profiles.start("default", str(tmp_path))


def test_smoke_is_smaller_than_default_is_smaller_than_paper():
    s, d, p = (profiles.load("01", x) for x in profiles.PROFILES)
    assert s.epochs < d.epochs < p.epochs
    assert s.width <= d.width < p.width


def test_wrong_typed_items_of_a_tuple_parameter_say_so():
    with pytest.raises(ProfileError, match=r"'seeds' must be a tuple of int, got str '1' in \(0, '1'\)"):
        profiles.load("02", "default", seeds=(0, "1"))
    with pytest.raises(ProfileError, match="'proj_dims' must be a tuple of int, got float 32.5"):
        profiles.load("02", "default", proj_dims=(32.5,))
    with pytest.raises(ProfileError, match="'lr' must be float, got str '0.1'"):
        profiles.load("01", "default", lr="0.1")
    assert profiles.load("02", "default", seeds=(4, 5)).seeds == (4, 5)
    assert profiles.load("02", "default", recipes=("cv",)).recipes == ("cv",)
