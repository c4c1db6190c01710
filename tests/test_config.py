"""Configuration: TOML files through ``Guard.from_file`` and the start-up checks of ``Guard``."""

from __future__ import annotations

from pathlib import Path

import pytest

import kzai_guard as kg
from tests.samples import GATEWAY_SUBJECT

VALID = """\
[guard]
profile = "kz"
store = "memory://"
subject_header = "X-Applicant"
contact = "credit@example.kz"
review_deadline_days = 5

[[policy]]
name = "loan_approval"
purpose = "credit-scoring"
domain = "credit"
significance = "legal-effect"
autonomy = "high"
risk = "high"
notice_version = "2026-01"
model = { name = "m", version = "1" }

[[policy]]
name = "offer_ranking"
significance = "affects-interests"
autonomy = "medium"
risk = "minimal"
mode = "monitor"
model = { name = "m", version = "1" }
"""
KEY = b"k" * 32
MODEL = kg.ModelInfo(name="m", version="1")
CONTACT = "credit@example.kz"


def write(tmp_path: Path, text: str, name: str = "kzai-guard.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def from_file(path: Path) -> kg.Guard:
    return kg.Guard.from_file(path, audit=kg.MemorySink(), pseudonym_key=KEY)


def test_valid_file_builds_a_guard_with_its_policies_and_settings(tmp_path: Path) -> None:
    guard = from_file(write(tmp_path, VALID))
    try:
        assert guard.policy_names == frozenset({"loan_approval", "offer_ranking"})
        assert guard.policy("loan_approval") == kg.DecisionPolicy(
            name="loan_approval",
            purpose="credit-scoring",
            domain=kg.Domain.CREDIT,
            significance=kg.Significance.LEGAL_EFFECT,
            autonomy=kg.Autonomy.HIGH,
            risk=kg.RiskClass.HIGH,
            notice_version="2026-01",
            model=MODEL,
        )
        assert guard.policy("offer_ranking").mode is kg.Mode.MONITOR
        assert guard.profile is kg.Profile.KZ
        assert guard.settings.contact == "credit@example.kz"
        assert guard.settings.review_deadline_days == 5
        scope = {"type": "http", "headers": [(b"x-applicant", b"A-1")]}
        assert guard.subject_resolver(scope) == "A-1"
    finally:
        guard.close()


def test_keyword_overrides_win_over_the_file(tmp_path: Path) -> None:
    guard = kg.Guard.from_file(
        write(tmp_path, VALID),
        audit=kg.MemorySink(),
        pseudonym_key=KEY,
        contact="override@example.kz",
        subject=GATEWAY_SUBJECT,
    )
    try:
        assert guard.settings.contact == "override@example.kz"
    finally:
        guard.close()


def test_missing_file_raises_configuration_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(kg.ConfigurationError) as caught:
        from_file(path)

    assert str(path) in str(caught.value)


def test_invalid_toml_raises_configuration_error_naming_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "\nthis is not toml\n")

    with pytest.raises(kg.ConfigurationError) as caught:
        from_file(path)

    message = str(caught.value)
    assert str(path) in message
    assert "not valid TOML" in message
    assert f"line {VALID.count(chr(10)) + 2}," in message


def test_unknown_table_raises_configuration_error_naming_the_file_and_table(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, VALID + "\n[logging]\nlevel = 'debug'\n")

    with pytest.raises(kg.ConfigurationError) as caught:
        from_file(path)

    assert str(path) in str(caught.value)
    assert "'logging'" in str(caught.value)


def test_unknown_guard_key_raises_configuration_error_naming_the_file_and_key(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, VALID.replace('profile = "kz"', 'profile = "kz"\ncolour = "red"'))

    with pytest.raises(kg.ConfigurationError) as caught:
        from_file(path)

    message = str(caught.value)
    assert str(path) in message
    assert "[guard]" in message
    assert "'colour'" in message


def test_file_without_policies_raises_configuration_error_naming_the_file(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, '[guard]\nprofile = "kz"\n')

    with pytest.raises(kg.ConfigurationError) as caught:
        from_file(path)

    assert str(path) in str(caught.value)
    assert "[[policy]]" in str(caught.value)


@pytest.mark.parametrize(
    ("edit", "field", "problem"),
    [
        (
            ('risk = "high"\n', ""),
            "risk",
            'Field required (add risk = "minimal", "medium" or "high")',
        ),
        (('autonomy = "high"', 'autonomy = "total"'), "autonomy", "'low', 'medium' or 'high'"),
        (
            ('significance = "legal-effect"', 'significance = "huge"'),
            "significance",
            "Input should be",
        ),
        (
            ('risk = "high"', 'risk = "high"\ncolour = "red"'),
            "colour",
            "Extra inputs are not permitted (remove it, or check its spelling; a policy's fields: "
            "name, purpose, domain",
        ),
        (('purpose = "credit-scoring"', "purpose = 42"), "purpose", "valid string"),
    ],
    ids=["missing-field", "invalid-enum", "invalid-significance", "unknown-field", "wrong-type"],
)
def test_invalid_policy_raises_configuration_error_naming_file_policy_and_field(
    tmp_path: Path, edit: tuple[str, str], field: str, problem: str
) -> None:
    path = write(tmp_path, VALID.replace(*edit, 1))

    with pytest.raises(kg.ConfigurationError) as caught:
        from_file(path)

    message = str(caught.value)
    assert str(path) in message
    assert "policy 'loan_approval'" in message
    assert f"field '{field}'" in message
    assert problem in message


def test_a_policy_that_is_not_a_table_says_how_to_declare_one(tmp_path: Path) -> None:
    path = write(tmp_path, 'policy = [1, 2]\n[guard]\ncontact = "x@bank.kz"\n')

    with pytest.raises(kg.ConfigurationError) as caught:
        from_file(path)

    assert str(caught.value) == (
        f"{path}: policy #1 is not a table; declare each policy as [[policy]]"
    )


def test_invalid_unnamed_policy_is_named_by_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('name = "offer_ranking"\n', ""))

    with pytest.raises(kg.ConfigurationError) as caught:
        from_file(path)

    assert str(path) in str(caught.value)
    assert "policy '#2'" in str(caught.value)
    assert "field 'name'" in str(caught.value)


def test_prohibited_capability_in_a_file_raises_prohibited_practice_naming_file_policy_and_field(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        VALID.replace('risk = "high"', 'risk = "high"\ncapabilities = ["subliminal-manipulation"]'),
    )

    with pytest.raises(kg.ProhibitedPractice) as caught:
        from_file(path)

    message = str(caught.value)
    assert "policy 'loan_approval'" in message
    assert "'capabilities'" in message
    assert str(path) in message


def test_invalid_guard_setting_in_a_file_raises_configuration_error_naming_file_and_key(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, VALID.replace('profile = "kz"', 'profile = "mars"'))

    with pytest.raises(kg.ConfigurationError) as caught:
        from_file(path)

    message = str(caught.value)
    assert "profile" in message
    assert str(path) in message


# -- start-up checks --------------------------------------------------------------------------


def policy(**fields: object) -> kg.DecisionPolicy:
    values: dict[str, object] = {
        "name": "loan_approval",
        "purpose": "credit-scoring",
        "significance": kg.Significance.LEGAL_EFFECT,
        "autonomy": kg.Autonomy.HIGH,
        "risk": kg.RiskClass.HIGH,
        "model": MODEL,
    }
    values.update(fields)
    return kg.DecisionPolicy(**values)  # type: ignore[arg-type]


def start(*policies: kg.DecisionPolicy, profile: str = "kz", contact: str | None = CONTACT) -> None:
    guard = kg.Guard(
        list(policies),
        profile=profile,
        store="memory://",
        audit=kg.MemorySink(),
        pseudonym_key=KEY,
        contact=contact,
        subject=GATEWAY_SUBJECT,
    )
    guard.close()


def test_two_policies_with_one_name_refuse_to_start() -> None:
    with pytest.raises(kg.ConfigurationError, match="two policies are called 'loan_approval'"):
        start(policy(), policy(purpose="other"))


def test_no_policies_refuse_to_start() -> None:
    with pytest.raises(kg.ConfigurationError, match="at least one DecisionPolicy"):
        start()


@pytest.mark.parametrize("autonomy", [kg.Autonomy.HIGH, kg.Autonomy.MEDIUM])
@pytest.mark.parametrize(
    "significance", [kg.Significance.LEGAL_EFFECT, kg.Significance.SIMILARLY_SIGNIFICANT]
)
def test_significant_automated_policy_without_any_basis_refuses_to_start(
    autonomy: kg.Autonomy, significance: kg.Significance
) -> None:
    with pytest.raises(kg.ConfigurationError) as caught:
        start(policy(purpose=None, autonomy=autonomy, significance=significance))

    message = str(caught.value)
    assert "policy 'loan_approval'" in message
    assert "'purpose'" in message
    assert "'statutory_basis'" in message
    assert "fallback = 'human'" in message


@pytest.mark.parametrize(
    "fields",
    [
        {"purpose": "credit-scoring"},
        {"statutory_basis": kg.StatutoryBasis(law="Tax Code, art. 12")},
        {"fallback": kg.Fallback.HUMAN},
        {"autonomy": kg.Autonomy.LOW},
        {"significance": kg.Significance.AFFECTS_INTERESTS},
    ],
    ids=["purpose", "statutory-basis", "human-fallback", "low-autonomy", "not-significant"],
)
def test_significant_policy_starts_with_a_basis_fallback_or_human_in_control(
    fields: dict[str, object],
) -> None:
    start(policy(**{"purpose": None, **fields}))


def test_contract_necessity_alone_starts_under_eu_but_not_kz() -> None:
    relying_on_contract = policy(purpose=None, contract_necessity=True)

    start(relying_on_contract, profile="eu")
    with pytest.raises(kg.ConfigurationError, match="needs a legal basis"):
        start(relying_on_contract, profile="kz")


def test_emotion_recognition_without_purpose_refuses_to_start() -> None:
    with pytest.raises(kg.ConfigurationError) as caught:
        start(
            policy(
                purpose=None,
                significance=kg.Significance.NONE,
                capabilities=frozenset({kg.Capability.EMOTION_RECOGNITION}),
            )
        )

    assert not isinstance(caught.value, kg.ProhibitedPractice)
    assert "policy 'loan_approval'" in str(caught.value)
    assert "'emotion-recognition'" in str(caught.value)
    assert "'purpose'" in str(caught.value)


def test_emotion_recognition_with_a_consent_purpose_starts() -> None:
    start(policy(capabilities=frozenset({kg.Capability.EMOTION_RECOGNITION})))


def test_social_scoring_without_statutory_basis_is_a_prohibited_practice() -> None:
    with pytest.raises(kg.ProhibitedPractice) as caught:
        start(policy(capabilities=frozenset({kg.Capability.SOCIAL_SCORING})))

    assert "policy 'loan_approval'" in str(caught.value)
    assert "'social-scoring'" in str(caught.value)
    assert "'statutory_basis'" in str(caught.value)


def test_social_scoring_with_a_statutory_basis_starts() -> None:
    start(
        policy(
            capabilities=frozenset({kg.Capability.SOCIAL_SCORING}),
            statutory_basis=kg.StatutoryBasis(law="Law on credit bureaus, art. 9"),
        )
    )


@pytest.mark.parametrize(
    ("capability", "article"),
    [
        (kg.Capability.SUBLIMINAL_MANIPULATION, "17(3)(1)"),
        (kg.Capability.VULNERABILITY_EXPLOITATION, "17(3)(2)"),
        (kg.Capability.UNLAWFUL_PERSONAL_DATA_PROCESSING, "17(3)(4)"),
        (kg.Capability.BIOMETRIC_CATEGORISATION, "17(3)(5)"),
        (kg.Capability.PROHIBITED_OUTPUT, "17(3)(7)"),
    ],
)
def test_prohibited_capability_refuses_to_start_naming_policy_capability_and_article(
    capability: kg.Capability, article: str
) -> None:
    with pytest.raises(kg.ProhibitedPractice) as caught:
        start(
            policy(
                capabilities=frozenset({capability}),
                statutory_basis=kg.StatutoryBasis(law="Some law"),
            )
        )

    message = str(caught.value)
    assert "policy 'loan_approval'" in message
    assert f"'{capability.value}'" in message
    assert f"KZ-AI {article}" in message
    assert "'capabilities'" in message


def test_invalid_guard_setting_raises_configuration_error_naming_the_setting() -> None:
    with pytest.raises(kg.ConfigurationError, match="review_deadline_days"):
        kg.Guard(
            [policy()],
            store="memory://",
            audit=kg.MemorySink(),
            pseudonym_key=KEY,
            contact=CONTACT,
            review_deadline_days=0,
            subject=GATEWAY_SUBJECT,
        )


# -- explanation sources (KZ-AI 16(1)(4)) -----------------------------------------------------


@pytest.mark.parametrize(
    "significance",
    [
        kg.Significance.LEGAL_EFFECT,
        kg.Significance.SIMILARLY_SIGNIFICANT,
        kg.Significance.AFFECTS_INTERESTS,
    ],
)
def test_significant_policy_without_model_refuses_to_start_naming_policy_and_model(
    significance: kg.Significance,
) -> None:
    with pytest.raises(kg.ConfigurationError) as caught:
        start(policy(significance=significance, model=None))

    message = str(caught.value)
    assert "policy 'loan_approval'" in message
    assert "'model'" in message


def test_policy_without_model_in_a_file_refuses_to_start_naming_file_policy_and_model(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, VALID.replace('model = { name = "m", version = "1" }\n', "", 1))

    with pytest.raises(kg.ConfigurationError) as caught:
        from_file(path)

    message = str(caught.value)
    assert str(path) in message
    assert "policy 'loan_approval'" in message
    assert "'model'" in message


def test_guard_without_contact_refuses_to_start_naming_contact() -> None:
    with pytest.raises(kg.ConfigurationError) as caught:
        start(policy(), contact=None)

    assert "contact" in str(caught.value)


def test_guard_file_without_contact_refuses_to_start_naming_file_and_contact(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, VALID.replace('contact = "credit@example.kz"\n', "", 1))

    with pytest.raises(kg.ConfigurationError) as caught:
        from_file(path)

    message = str(caught.value)
    assert str(path) in message
    assert "contact" in message


def test_policy_of_no_significance_starts_without_model_or_contact() -> None:
    start(policy(significance=kg.Significance.NONE, model=None), contact=None)


def test_a_short_pseudonym_key_refuses_to_start() -> None:
    with pytest.raises(kg.ConfigurationError, match="pseudonym_key must be at least 32 bytes"):
        kg.Guard(
            [policy()],
            store="memory://",
            audit=kg.MemorySink(),
            pseudonym_key=b"short",
            contact=CONTACT,
            subject=GATEWAY_SUBJECT,
        )
