"""Configuration: TOML + COLDCHAIN_* overrides, secrets, profiles and inventory checks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from coldchain.cli.main import main
from coldchain.config import ConfigError, load_settings
from coldchain.core.durations import format_duration, parse_duration
from tests.samples import ONE_FRIDGE

VALID = f"""
[influx]
database = "pharmacy"
{ONE_FRIDGE}"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "coldchain.toml"
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),  # the contract's own examples
        ("15m", 900),
        ("8h", 28800),
        ("1h30m", 5400),  # compound
        ("500ms", 0.5),  # sub-second, for short test configs
        ("2d", 172800),
    ],
)
def test_durations_parse(text: str, seconds: float) -> None:
    """Durations are written like 90s, 15m, 8h and round-trip through their printed form."""
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["15", "m15", "15 minutes", "-5m", "", "1.5.2h"])
def test_bad_durations_are_refused(text: str) -> None:
    """A duration without a unit, or in words, is an error rather than a guess."""
    with pytest.raises(ValueError):
        parse_duration(text)


def test_defaults_and_builtin_profile(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A minimal file gets the contract's defaults and the natalizumab profile."""
    settings = load_settings(write(tmp_path, VALID))
    assert settings.mqtt.client_id == "coldchain"
    assert settings.influx.database == "pharmacy"
    assert settings.api.listen == "127.0.0.1:8080"
    profile = settings.profiles["natalizumab"]
    assert (profile.min_celsius, profile.max_celsius, profile.freeze_celsius) == (2.0, 8.0, 0.0)
    assert profile.excursion_delay == timedelta(minutes=15)
    assert profile.diluted_use_within == timedelta(hours=8)
    assert settings.units[0].offline_after == timedelta(minutes=15)


def test_environment_overrides_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """COLDCHAIN_INFLUX__URL beats the file; other keys of the same table keep the file's values."""
    env.setenv("COLDCHAIN_INFLUX__URL", "http://influx.example:8086")
    env.setenv("COLDCHAIN_MQTT__PASSWORD", "s3cret")
    settings = load_settings(write(tmp_path, VALID))
    assert settings.influx.url == "http://influx.example:8086"
    assert settings.influx.database == "pharmacy"
    assert settings.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_secret_from_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A token can come from a secret file named by *_file (Docker secrets)."""
    secret = tmp_path / "influx-token"
    secret.write_text("tok-123456\n")
    env.setenv("COLDCHAIN_INFLUX__AUTH", "token")
    env.setenv("COLDCHAIN_INFLUX__TOKEN_FILE", str(secret))
    settings = load_settings(write(tmp_path, VALID))
    assert settings.influx.token.get_secret_value() == "tok-123456"


def test_profile_override_keeps_other_keys(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Overriding one key of the built-in profile keeps the rest; units can override further."""
    text = VALID + "\n[profiles.natalizumab]\nmax_celsius = 7.5\n"
    text = text.replace('name = "Infusion fridge A"', 'name = "A"\noverrides = { excursion_delay = "10m" }')
    settings = load_settings(write(tmp_path, text))
    assert settings.profiles["natalizumab"].max_celsius == 7.5
    assert settings.profiles["natalizumab"].min_celsius == 2.0
    effective = settings.unit_profile(settings.units[0])
    assert effective.excursion_delay == timedelta(minutes=10)
    assert effective.max_celsius == 7.5


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # a typo in a key names the key and the file
        (("[influx]", "[influx]\ndatabse = 'x'"), "influx.databse: unknown key"),
        # a sensor pointing at a unit that does not exist names the sensor
        (('unit = "fridge-a"', 'unit = "fridge-z"'), "sensors[0] (id 't-001').unit: unknown unit 'fridge-z'"),
        # a bad kind names the field and the sensor, as unit errors do
        (('kind = "temperature"', 'kind = "humidity"'), "sensors[0] (id 't-001').kind: Input should be"),
        # a bad duration names the field
        (('name = "Infusion fridge A"', 'offline_after = "soon"'), "units[0] (id 'fridge-a').offline_after"),
        # an unknown profile names the unit
        (('name = "Infusion fridge A"', 'profile = "insulin"'), "units[0] (id 'fridge-a').profile: unknown profile"),
        # per-unit overrides are validated against the whole profile, naming the unit
        (
            ('name = "Infusion fridge A"', "overrides = { min_celsius = 9.0 }"),
            "units[0] (id 'fridge-a').overrides: min_celsius (9.0) must be below max_celsius (8.0)",
        ),
        # a profile whose freezing point is above its minimum is refused
        (("[influx]", "[profiles.natalizumab]\nfreeze_celsius = 3.0\n[influx]"), "freeze_celsius (3.0)"),
        # token auth without a token
        (("[influx]", "[influx]\nauth = 'token'"), "needs influx.token"),
    ],
)
def test_problems_name_their_key(
    env: pytest.MonkeyPatch, tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    """Every configuration problem names the file and the key (or inventory entry) at fault."""
    path = write(tmp_path, VALID.replace(*change, 1))
    problems = problems_of(path)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(str(path)) for p in problems)


def test_duplicate_ids_are_errors(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Two sensors with one id would split a fridge's data: refused."""
    text = VALID + '\n[[sensors]]\nid = "t-001"\nunit = "fridge-a"\nkind = "shake"\n'
    assert any("sensors[1] (id 't-001'): duplicate sensor id" in p for p in problems_of(write(tmp_path, text)))


def test_check_config_cli(env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check-config prints a summary and exits 0, or prints every problem and exits 1."""
    good = write(tmp_path, VALID)
    assert main(["check-config", "--config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "1 units, 1 sensors" in out and "Infusion fridge A" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(VALID.replace('unit = "fridge-a"', 'unit = "nope"').replace("[influx]", "[influx]\nport = 1"))
    with pytest.raises(SystemExit) as exit_info:
        main(["check-config", "--config", str(bad)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "influx.port: unknown key" in err
    assert "sensors[0] (id 't-001').unit: unknown unit 'nope'" in err  # reported in the same run


def test_unreadable_and_invalid_toml(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A missing file or broken TOML is one line naming the file (and the line and column)."""
    missing = tmp_path / "missing.toml"
    assert problems_of(missing) == [f"{missing}: cannot read: No such file or directory"]
    broken = write(tmp_path, '[mqtt]\nurl = "a" "b"\n')
    (problem,) = problems_of(broken)
    assert problem.startswith(f"{broken}: not valid TOML: ") and problem.endswith("(line 2, column 11)"), problem


def test_cli_prints_toml_errors_with_the_file(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the user sees on the terminal names the file too (the problems are printed as they are)."""
    missing = tmp_path / "x.toml"
    with pytest.raises(SystemExit):
        main(["check-config", "--config", str(missing)])
    assert capsys.readouterr().err == f"{missing}: cannot read: No such file or directory\n"


def test_bad_json_in_an_environment_variable_is_one_line_naming_it(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A list or table given as JSON in the environment that does not parse names the variable, no traceback."""
    env.setenv("COLDCHAIN_API__USERS", '[{"name": "pharmacy", "token": "abcdefghij"}')
    assert problems_of(write(tmp_path, VALID)) == [
        "COLDCHAIN_API__USERS: not valid JSON: Expecting ',' delimiter (line 1, column 45)"
    ]


def test_environment_errors_name_the_variable_not_the_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A typo or bad value set by the environment is blamed on the variable; the file's own errors on the file."""
    env.setenv("COLDCHAIN_INFLUX__DATABSE", "x")
    env.setenv("COLDCHAIN_API__USERS", '[{"name": "pharmacy", "token": "short"}]')
    path = write(tmp_path, VALID.replace('kind = "temperature"', 'kind = "humidity"'))
    problems = problems_of(path)
    assert "COLDCHAIN_INFLUX__DATABSE: influx.databse: unknown key" in problems
    assert (
        "COLDCHAIN_API__USERS: api.users[0]: api user 'pharmacy' needs a token of at least 8 characters" in problems
    )
    assert any(p.startswith(f"{path}: sensors[0] (id 't-001').kind: ") for p in problems), problems
    # a check on a whole table with keys from both names both
    env.delenv("COLDCHAIN_INFLUX__DATABSE")
    env.delenv("COLDCHAIN_API__USERS")
    env.setenv("COLDCHAIN_INFLUX__AUTH", "token")
    assert problems_of(write(tmp_path, VALID)) == [
        f"{path}, COLDCHAIN_INFLUX__AUTH: influx: auth = 'token' needs influx.token (or influx.token_file)"
    ]


def test_sensors_from_the_environment_are_named_by_id(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An inventory given whole in the environment still names the entry by its id."""
    env.setenv("COLDCHAIN_SENSORS", '[{"id": "t-009", "unit": "fridge-a", "kind": "humidity"}]')
    (problem,) = problems_of(write(tmp_path, VALID))
    assert problem.startswith("COLDCHAIN_SENSORS: sensors[0] (id 't-009').kind: Input should be"), problem


HASH = "$argon2id$v=19$m=65536,t=3,p=4$DclM5yCWOMF4KYIbTuk0dQ$s9bMVfvVZNwALWHipMk+cMDEt45a5WLIdmS/oXW8zCM"
WARNED = VALID + f"""
[[api.users]]
name = "j.doe"
full_name = "Jane Doe, PharmD"
token = "example-token-123"
password_hash = "{HASH}"

[[api.users]]
name = "k.tech"
role = "staff"
token = "example-token-456"

[[notify.targets]]
name = "pharmacy-mail"
url = "json://127.0.0.1:9/"

[notify]
default_targets = ["pharmacy-mail"]

[export]
signing_key = "0123456789abcdef0123"
"""

USERS_TABLES = WARNED[WARNED.index("[[api.users]]") : WARNED.index("[[notify.targets]]")]


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        ((USERS_TABLES, ""), "api.users: no [[api.users]]"),
        ((f'password_hash = "{HASH}"', ""), "api.users 'j.doe': a pharmacist without password_hash"),
        (('full_name = "Jane Doe, PharmD"', ""), "api.users 'j.doe': no full_name"),
        (('role = "staff"', 'role = "admin"'), "api.users 'k.tech': an admin without password_hash"),
        (
            ("[export]", '[[sites]]\nid = "main-pharmacy"\nreview_due = "10:00"\n\n[export]'),
            "api.users 'k.tech' (role staff): no password_hash (or password_hash_file): cannot sign the daily review "
            "(review_due at main-pharmacy;",
        ),
        (('default_targets = ["pharmacy-mail"]', 'default_targets = ["log"]'), "notify: alerts go only to the log"),
    ],
)
def test_check_config_warns_about_what_was_probably_not_meant(
    env: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str],
    warning: str,
) -> None:
    """No API user, a signer without a signing password or printed name, notifications only to the log:
    a WARNING line on stderr, still exit 0."""
    assert main(["check-config", "--config", str(write(tmp_path, WARNED))]) == 0
    assert capsys.readouterr().err == ""  # a complete configuration: no warnings
    assert main(["check-config", "--config", str(write(tmp_path, WARNED.replace(*change, 1)))]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("WARNING " + warning.replace("the log", "the service log")), err


def test_the_service_warns_at_start_when_the_api_has_no_users(
    env: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`coldchain run` logs a WARNING before it starts serving when nobody can call /api/."""
    import coldchain.roles.service

    started: list[tuple[str, ...]] = []

    class FakeService:
        rules = None

        def __init__(self, settings: object, roles: tuple[str, ...]) -> None:
            started.append(roles)

        def run_until_signal(self) -> int:
            return 0

    env.setattr(coldchain.roles.service, "Service", FakeService)
    env.setattr("coldchain.cli.main.configure_logging", lambda config: None)
    env.setattr("coldchain.cli.service.configure_logging", lambda config: None)
    with caplog.at_level("WARNING", logger="coldchain.cli"):
        assert main(["run", "--config", str(write(tmp_path, VALID))]) == 0
    assert started == [("ingest", "rules", "api")]
    assert any(r.levelname == "WARNING" and "no [[api.users]]" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="coldchain.cli"):
        assert main(["ingest", "--config", str(write(tmp_path, VALID))]) == 0  # ingest serves no /api/
    assert not caplog.records


def test_bag_without_a_configuration_says_so(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`coldchain bag` without --config names the missing configuration, not an 'unknown' unit."""
    env.chdir(tmp_path)
    assert main(["bag", "dilute", "B-2001", "--by", "j.doe", "--unit", "fridge-a"]) == 2
    err = capsys.readouterr().err
    assert "no configuration loaded" in err and "--config" in err and "not in the inventory" not in err
