"""Case owners: matched on language, stable per customer, kept for a returning customer."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.recovery.domain import RosterError, assign_owner, load_roster, supervisor_for
from services.recovery.domain.roster import language_of

from .builders import ROSTER


def _members(language: str) -> set[str]:
    return {m.id for m in ROSTER.owners if language in m.languages}


def test_the_shipped_roster_has_two_owners_and_a_supervisor_per_language() -> None:
    assert len(_members("es")) >= 2
    assert len(_members("en")) >= 2
    assert {language_of("es-CO"), language_of("en-GB")} <= {lang for s in ROSTER.supervisors for lang in s.languages}
    assert all(m.email.endswith("@example.com") for m in (*ROSTER.owners, *ROSTER.supervisors))


@pytest.mark.parametrize(
    ("locale", "language"),
    [("es-CO", "es"), ("es-ES", "es"), ("es", "es"), ("es_MX", "es"), ("en-US", "en"),
     ("pt-BR", "en"), ("fr", "en")],
)  # fmt: skip
def test_es_locales_are_spanish_and_the_rest_english(locale: str, language: str) -> None:
    assert language_of(locale) == language


def test_a_spanish_speaking_customer_gets_a_spanish_speaking_owner() -> None:
    for n in range(40):
        owner = assign_owner(ROSTER, f"cust-{n}", "es-CO", None)
        assert owner.id in _members("es")


def test_an_english_speaking_customer_gets_an_english_speaking_owner() -> None:
    for n in range(40):
        assert assign_owner(ROSTER, f"cust-{n}", "en-US", None).id in _members("en")


def test_the_pick_is_stable_for_a_customer() -> None:
    first = assign_owner(ROSTER, "cust-42", "es-ES", None)
    assert all(assign_owner(ROSTER, "cust-42", "es-ES", None) == first for _ in range(5))


def test_the_pick_spreads_customers_over_the_owners() -> None:
    picked = {assign_owner(ROSTER, f"cust-{n}", "en-US", None).id for n in range(60)}
    assert picked == _members("en")


def test_the_pick_does_not_depend_on_the_order_of_the_file() -> None:
    shuffled = ROSTER.model_copy(update={"owners": tuple(reversed(ROSTER.owners))})
    for n in range(20):
        assert assign_owner(shuffled, f"c{n}", "en-US", None) == assign_owner(ROSTER, f"c{n}", "en-US", None)


def test_the_pick_is_a_known_value_in_every_process() -> None:
    # Python's hash() is salted per process; this pins the sha256-based pick.
    assert assign_owner(ROSTER, "cust-1", "en-US", None).id == "owner-daniel"


def test_a_returning_customer_keeps_the_previous_owner_whatever_the_language() -> None:
    owner = assign_owner(ROSTER, "cust-1", "en-US", "owner-lucia")
    assert owner.id == "owner-lucia"


def test_a_previous_owner_who_left_the_roster_is_replaced_by_the_usual_pick() -> None:
    assert assign_owner(ROSTER, "cust-1", "es-CO", "owner-gone") == assign_owner(ROSTER, "cust-1", "es-CO", None)


def test_without_owners_of_the_language_the_pick_falls_back_to_english() -> None:
    english_only = ROSTER.model_copy(update={"owners": tuple(m for m in ROSTER.owners if "es" not in m.languages)})
    assert assign_owner(english_only, "cust-1", "es-CO", None).id in _members("en")


def test_urgent_escalations_go_to_a_supervisor_of_the_language() -> None:
    assert supervisor_for(ROSTER, "es-CO").id == "supervisor-carmen"
    assert supervisor_for(ROSTER, "en-US").id == "supervisor-james"
    assert supervisor_for(ROSTER, "de-DE").id == "supervisor-james"


def test_a_roster_without_supervisors_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[[owners]]\nid = "o"\nname = "O"\nemail = "o@example.com"\nlanguages = ["en"]\n',
        encoding="utf-8",
    )
    with pytest.raises(RosterError, match=r"roster file .*r\.toml: supervisors: Field required"):
        load_roster(path)


def test_a_roster_with_a_bad_email_names_the_member(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[[owners]]\nid = "o"\nname = "O"\nemail = "nope"\nlanguages = ["en"]\n'
        '[[supervisors]]\nid = "s"\nname = "S"\nemail = "s@example.com"\nlanguages = ["en"]\n',
        encoding="utf-8",
    )
    with pytest.raises(RosterError, match=r"owners\.0\.email"):
        load_roster(path)


def test_a_roster_with_repeated_ids_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    member = 'id = "o"\nname = "O"\nemail = "o@example.com"\nlanguages = ["en"]\n'
    path.write_text(f"[[owners]]\n{member}[[supervisors]]\n{member}", encoding="utf-8")
    with pytest.raises(RosterError, match="repeated: o"):
        load_roster(path)
