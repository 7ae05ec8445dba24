import pytest

from dicomsvc.dicom.vr import person_name_display


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("Test^Patient0", "Patient0 Test"),
        ("ROSSI^MARIO", "MARIO ROSSI"),
        ("Test^Patient0^Maria^Dr^PhD", "Dr Patient0 Maria Test, PhD"),
        ("MÜLLER^ANNA^^DR^=ミュラー^アンナ", "DR ANNA MÜLLER (ミュラー アンナ)"),
        ("=山田^太郎", "山田 太郎"),
        ("SINGLE", "SINGLE"),
        ("^^^^Jr", "Jr"),
        ("", ""),
    ],
)
def test_a_person_name_shows_as_people_write_it(value, shown):
    assert person_name_display(value) == shown
