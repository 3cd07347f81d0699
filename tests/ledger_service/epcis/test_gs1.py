"""GS1 item names: EPC URIs, Digital Links and element strings reduce to the same GTIN-14 + serial, and
malformed ones are refused with a sentence that names the problem."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_service.epcis.gs1 import (
    Gs1Error,
    ItemKey,
    check_digit,
    key_of_uri,
    normalize_gtin,
    parse_item_key,
)

KEY = ItemKey(gtin="09506000134352", serial="2017")


@pytest.mark.parametrize(
    "gtin",
    ["09506000134352", "9506000134352", "40170725", "614141000036", "80614141123458", "10614141073464"],
)
def test_published_gtins_have_correct_check_digits(gtin: str) -> None:
    assert check_digit(gtin[:-1]) == int(gtin[-1])
    assert normalize_gtin(gtin) == gtin.zfill(14)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("09506000134353", "wrong check digit: it should end in 2"),
        ("0950600013435", "wrong check digit"),
        ("123", "8, 12, 13 or 14 digits"),
        ("0950600013435x", "8, 12, 13 or 14 digits"),
        ("\uff10\uff19" + "0" * 12, "8, 12, 13 or 14 digits"),  # full-width digits are not GTIN digits
    ],
)
def test_malformed_gtins_are_refused(text: str, message: str) -> None:
    with pytest.raises(Gs1Error, match=message):
        normalize_gtin(text)


def test_tds_example_sgtin_converts_without_knowing_the_prefix_length() -> None:
    # GS1 EPC Tag Data Standard: (01) 80614141123458 (21) 6789 = urn:epc:id:sgtin:0614141.812345.6789
    assert parse_item_key("urn:epc:id:sgtin:0614141.812345.6789") == ItemKey("80614141123458", "6789")
    assert parse_item_key("URN:EPC:ID:SGTIN:0614141.812345.6789") == ItemKey("80614141123458", "6789")
    assert parse_item_key("urn:epc:id:sgtin:950600.0013435.2017") == KEY  # 6-digit prefix
    assert parse_item_key("urn:epc:id:sgtin:950600013435.0.2017") == KEY  # 12-digit prefix


@pytest.mark.parametrize(
    "link",
    [
        "https://id.gs1.org/01/09506000134352/21/2017",
        "http://id.gs1.org/01/09506000134352/21/2017",
        "https://brand.example.com/01/9506000134352/21/2017",  # GTIN-13, another host
        "https://example.com/products/en/01/09506000134352/10/LOT-7/21/2017/extra?17=280101&linkType=all#top",
        "https://id.gs1.org/gtin/09506000134352/ser/2017",  # Digital Link 1.0 convenience alphas
    ],
)
def test_digital_links_name_the_item(link: str) -> None:
    assert parse_item_key(link) == KEY


def test_element_string_names_the_item() -> None:
    assert parse_item_key("(01)09506000134352(21)2017") == KEY
    assert parse_item_key("(01)09506000134352(10)ABC(21)2017") == KEY


def test_escaped_serials_decode_the_same_in_every_form() -> None:
    key = ItemKey("09506000134352", 'A/B"%&<>?1')
    sgtin = key.sgtin_uris()[1]
    assert sgtin == "urn:epc:id:sgtin:9506000.013435.A%2FB%22%25%26%3C%3E%3F1"
    assert parse_item_key(sgtin) == key
    assert parse_item_key(key.digital_link()) == key
    assert parse_item_key(key.digital_link("https://brand.example")) == key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("https://id.gs1.org/01/09506000134352", "names a product .* but no serial number"),
        ("https://id.gs1.org/01/09506000134353/21/1", "wrong check digit"),
        ("https://example.com/shop/item/2017", "its path has no /01/"),
        ("urn:epc:id:sgtin:0614141.10734.1", "13 digits"),
        ("urn:epc:id:sgtin:06141.12345678.1", "13 digits"),
        ("urn:epc:id:sgtin:0614141.107346", "not an SGTIN URI"),
        ("urn:epc:id:sgtin:0614141.107346.", "serial number is empty"),
        ("urn:epc:id:sgtin:0614141.107346.a%zz", "not followed by two hex digits"),
        ("urn:epc:id:sgtin:0614141.107346.123456789012345678901", "longer than 20"),
        ("urn:epc:id:sgtin:0614141.107346.caf%C3%A9", "characters GS1 does not allow"),
        ("urn:epc:id:sscc:0614141.1234567890", "not of an item with a serial number"),
        ("(01)09506000134352", "element string with \\(01\\) GTIN-14 and \\(21\\)"),
    ],
)
def test_malformed_names_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(Gs1Error, match=message):
        parse_item_key(text)
    assert key_of_uri(text) is None


@pytest.mark.parametrize("text", ["hello", "RMA-ABC", "0x" + "ab" * 32, "ftp://id.gs1.org/01/09506000134352/21/1"])
def test_other_text_is_not_a_gs1_name(text: str) -> None:
    assert parse_item_key(text) is None


def test_candidate_uris_cover_every_prefix_length() -> None:
    uris = KEY.sgtin_uris()
    assert len(uris) == 7
    assert all(parse_item_key(uri) == KEY for uri in uris)
    assert "urn:epc:id:sgtin:9506000.013435.2017" in uris


@given(
    body=st.text(alphabet="0123456789", min_size=13, max_size=13),
    serial=st.text(alphabet="ABCxyz0189-._!'()*+,:;=/%&<>?\"", min_size=1, max_size=20),
)
def test_every_form_round_trips(body: str, serial: str) -> None:
    key = ItemKey(gtin=body + str(check_digit(body)), serial=serial)
    forms = [*key.sgtin_uris(), key.digital_link(), key.digital_link("http://x.example")]
    assert {parse_item_key(form) for form in forms} == {key}
    written = key.serial_forms()  # what the GTIN + serial search looks for inside registered URIs
    assert all(any(uri.endswith(f".{form}") for form in written) for uri in key.sgtin_uris())
    assert any(key.digital_link().endswith(f"/21/{form}") for form in written)
