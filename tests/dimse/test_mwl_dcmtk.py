"""Modality Worklist C-FIND driven by dcmtk's findscu -W: each matching rule of PS3.4 annex K."""

from __future__ import annotations

import datetime as dt

import pytest

from core.models import AuditEvent
from tests.dimse.conftest import dump2dcm, findscu, make_item, sps, wait_for

pytestmark = pytest.mark.dcmtk

SPS = "ScheduledProcedureStepSequence[0]"


def ids(responses) -> list[str]:
    return [ds.PatientID for ds in responses]


def test_a_typical_modality_query_returns_todays_items_for_that_modality_and_station(scp, tmp_path):
    today = dt.date.today()
    wanted = make_item(patient_id="WANTED", scheduled_time=dt.time(8, 30))
    make_item(patient_id="OTHERMOD", modality="MR")
    make_item(patient_id="OTHERAE", scheduled_station_ae_title="CT2")
    make_item(patient_id="TOMORROW", scheduled_date=today + dt.timedelta(days=1))
    responses = findscu(
        scp,
        tmp_path,
        "PatientID",
        "PatientName",
        "AccessionNumber",
        f"{SPS}.Modality=CT",
        f"{SPS}.ScheduledStationAETitle=CT1",
        f"{SPS}.ScheduledProcedureStepStartDate={today:%Y%m%d}",
        f"{SPS}.ScheduledProcedureStepStartTime",
    )
    assert ids(responses) == ["WANTED"]
    ds = responses[0]
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.AccessionNumber == wanted.accession_number
    assert str(ds.PatientName) == "ROSSI^MARIO"
    assert sps(ds).ScheduledProcedureStepStartTime == "083000"
    assert sps(ds).Modality == "CT"


def test_the_answer_holds_exactly_the_requested_keys_with_empty_type_2_values(scp, tmp_path):
    make_item(patient_id="P1", patient_birth_date=None, referring_physician_name="")
    (ds,) = findscu(
        scp,
        tmp_path,
        "PatientID=P1",
        "PatientBirthDate",
        "ReferringPhysicianName",
        "RequestedProcedurePriority",  # not kept by dicomsvc: returned zero-length
        f"{SPS}.Modality",
    )
    keywords = {elem.keyword for elem in ds}
    assert keywords == {
        "SpecificCharacterSet",
        "PatientID",
        "PatientBirthDate",
        "ReferringPhysicianName",
        "RequestedProcedurePriority",
        "ScheduledProcedureStepSequence",
    }
    assert ds["PatientBirthDate"].value in ("", None)
    assert ds["ReferringPhysicianName"].value in ("", None)
    assert {elem.keyword for elem in sps(ds)} == {"Modality"}


def test_an_empty_sequence_key_returns_every_attribute_of_the_step(scp, tmp_path):
    make_item(patient_id="P1", scheduled_performing_physician_name="HÄUSER^GRÉGOR")
    (ds,) = findscu(scp, tmp_path, "PatientID=P1", "ScheduledProcedureStepSequence")
    step = sps(ds)
    assert step.Modality == "CT"
    assert step.ScheduledStationAETitle == "CT1"
    assert str(step.ScheduledPerformingPhysicianName) == "HÄUSER^GRÉGOR"  # UTF-8 inside the item too
    assert step.ScheduledProcedureStepStatus == "SCHEDULED"


def test_wildcards_star_and_question_mark_match_and_sql_wildcards_stay_literal(scp, tmp_path):
    make_item(patient_id="AB_1")
    make_item(patient_id="ABX1")
    make_item(patient_id="AB%22")
    make_item(patient_id="ZZ9")
    assert sorted(ids(findscu(scp, tmp_path, "PatientID=AB*"))) == ["AB%22", "ABX1", "AB_1"]
    assert ids(findscu(scp, tmp_path, "PatientID=AB_*")) == ["AB_1"]
    assert ids(findscu(scp, tmp_path, "PatientID=AB%*")) == ["AB%22"]
    assert sorted(ids(findscu(scp, tmp_path, "PatientID=AB?1"))) == ["ABX1", "AB_1"]
    assert ids(findscu(scp, tmp_path, "PatientID=AB_1")) == ["AB_1"]
    assert len(findscu(scp, tmp_path, "PatientID=*")) == 4


def test_person_names_match_case_insensitively_with_and_without_wildcards(scp, tmp_path):
    make_item(patient_id="MARIO", patient_name="ROSSI^MARIO")
    make_item(patient_id="ANNA", patient_name="Rossini^Anna")
    make_item(patient_id="JOHN", patient_name="SMITH^JOHN")
    assert ids(findscu(scp, tmp_path, "PatientID", "PatientName=rossi^mario")) == ["MARIO"]
    assert sorted(ids(findscu(scp, tmp_path, "PatientID", "PatientName=ross*"))) == ["ANNA", "MARIO"]
    assert ids(findscu(scp, tmp_path, "PatientID", "PatientName=sm?th^*")) == ["JOHN"]


def test_date_ranges_match_inclusively_and_open_ended(scp, tmp_path):
    for day in (1, 2, 3, 4):
        make_item(patient_id=f"D{day}", scheduled_date=dt.date(2031, 5, day))

    def query(value):
        return ids(findscu(scp, tmp_path, "PatientID", f"{SPS}.ScheduledProcedureStepStartDate={value}"))

    assert query("20310502-20310503") == ["D2", "D3"]
    assert query("-20310502") == ["D1", "D2"]
    assert query("20310503-") == ["D3", "D4"]
    assert query("20310504") == ["D4"]


def test_time_ranges_match_any_day_when_no_date_is_given(scp, tmp_path):
    make_item(patient_id="EARLY", scheduled_time=dt.time(7, 45))
    make_item(patient_id="MID", scheduled_time=dt.time(10, 15, 30))
    make_item(patient_id="LATE", scheduled_time=dt.time(16, 0), scheduled_date=dt.date(2031, 1, 1))

    def query(value):
        return ids(findscu(scp, tmp_path, "PatientID", f"{SPS}.ScheduledProcedureStepStartTime={value}"))

    assert query("0800-1200") == ["MID"]
    assert query("-10") == ["EARLY", "MID"]  # up to 10:59:59
    assert query("1000-") == ["MID", "LATE"]
    assert query("1015") == ["MID"]  # the whole minute


def test_start_date_and_time_together_form_one_date_time_range(scp, tmp_path):
    make_item(patient_id="DAY1_0700", scheduled_date=dt.date(2031, 7, 5), scheduled_time=dt.time(7, 0))
    make_item(patient_id="DAY1_1900", scheduled_date=dt.date(2031, 7, 5), scheduled_time=dt.time(19, 0))
    make_item(patient_id="DAY2_0600", scheduled_date=dt.date(2031, 7, 6), scheduled_time=dt.time(6, 0))
    make_item(patient_id="DAY3_1700", scheduled_date=dt.date(2031, 7, 7), scheduled_time=dt.time(17, 0))
    make_item(patient_id="DAY3_1900", scheduled_date=dt.date(2031, 7, 7), scheduled_time=dt.time(19, 0))
    responses = findscu(
        scp,
        tmp_path,
        "PatientID",
        f"{SPS}.ScheduledProcedureStepStartDate=20310705-20310707",
        f"{SPS}.ScheduledProcedureStepStartTime=1000-1800",
    )
    # From the 5th 10:00 to the 7th 18:00: the 6th at 06:00 is inside, the 5th at 07:00 is not.
    assert ids(responses) == ["DAY1_1900", "DAY2_0600", "DAY3_1700"]
    same_day = findscu(
        scp,
        tmp_path,
        "PatientID",
        f"{SPS}.ScheduledProcedureStepStartDate=20310705",
        f"{SPS}.ScheduledProcedureStepStartTime=0600-0800",
    )
    assert ids(same_day) == ["DAY1_0700"]


def test_a_list_of_uids_built_with_dump2dcm_matches_any_of_them(scp, tmp_path):
    first, second, _ = make_item(), make_item(), make_item()
    uids = f"{first.study_instance_uid}\\{second.study_instance_uid}"
    query = dump2dcm(tmp_path, f"(0010,0020) LO (no value)\n(0020,000d) UI [{uids}]\n")
    responses = findscu(scp, tmp_path, query_file=query)
    assert sorted(ds.StudyInstanceUID for ds in responses) == sorted(
        [first.study_instance_uid, second.study_instance_uid]
    )


def test_keys_inside_the_step_sequence_match_station_modality_and_performing_physician(scp, tmp_path):
    make_item(patient_id="HOUSE", scheduled_performing_physician_name="HOUSE^GREGORY")
    make_item(patient_id="WILSON", scheduled_performing_physician_name="WILSON^JAMES")
    make_item(patient_id="US", modality="US", scheduled_station_ae_title="US1")
    query = dump2dcm(
        tmp_path,
        "(0010,0020) LO (no value)\n"
        "(0040,0100) SQ (Sequence with explicit length #=1)\n"
        "  (fffe,e000) na (Item with explicit length #=3)\n"
        "    (0008,0060) CS [CT]\n"
        "    (0040,0001) AE [CT1]\n"
        "    (0040,0006) PN [house^*]\n"
        "  (fffe,e00d) na (ItemDelimitationItem for re-encoding)\n"
        "(fffe,e0dd) na (SequenceDelimitationItem for re-encoding)\n",
    )
    responses = findscu(scp, tmp_path, query_file=query)
    assert ids(responses) == ["HOUSE"]
    assert str(sps(responses[0]).ScheduledPerformingPhysicianName) == "HOUSE^GREGORY"
    assert ids(findscu(scp, tmp_path, "PatientID", f"{SPS}.ScheduledStationAETitle=US1")) == ["US"]


def test_only_scheduled_items_are_answered_unless_the_query_matches_on_status(scp, tmp_path):
    make_item(patient_id="SCHED")
    make_item(patient_id="DONE", state="COMPLETED")
    make_item(patient_id="GONE", state="CANCELED")
    assert ids(findscu(scp, tmp_path, "PatientID")) == ["SCHED"]
    done = findscu(scp, tmp_path, "PatientID", f"{SPS}.ScheduledProcedureStepStatus=COMPLETED")
    assert ids(done) == ["DONE"]
    assert sps(done[0]).ScheduledProcedureStepStatus == "COMPLETED"


def test_the_scheduled_states_answered_by_default_are_configurable(scp, tmp_path, settings):
    make_item(patient_id="SCHED")
    make_item(patient_id="RUNNING", state="IN PROGRESS")
    settings.DIMSE_MWL_STATES = ["SCHEDULED", "IN PROGRESS"]
    assert sorted(ids(findscu(scp, tmp_path, "PatientID"))) == ["RUNNING", "SCHED"]


def test_a_query_in_latin_1_is_decoded_and_answered_in_utf_8(scp, tmp_path):
    make_item(patient_id="MULLER", patient_name="MÜLLER^JÖRG")
    make_item(patient_id="MILLER", patient_name="MILLER^JOE")
    query = dump2dcm(
        tmp_path,
        "(0008,0005) CS [ISO_IR 100]\n(0010,0010) PN [müller^*]\n(0010,0020) LO (no value)\n",
        encoding="latin-1",
    )
    responses = findscu(scp, tmp_path, query_file=query)
    assert ids(responses) == ["MULLER"]
    assert responses[0].SpecificCharacterSet == "ISO_IR 192"
    assert str(responses[0].PatientName) == "MÜLLER^JÖRG"


def test_the_number_of_answers_is_capped_by_the_setting(scp, tmp_path, settings):
    for _ in range(5):
        make_item()
    settings.DIMSE_MWL_MAX_RESULTS = 3
    assert len(findscu(scp, tmp_path, "PatientID")) == 3


def test_findscu_cancel_stops_the_answers_early(scp, tmp_path):
    # Enough answers that the C-CANCEL sent after the second one always lands while they still stream
    # (60 could all be on the wire before it arrived on an idle machine).
    for _ in range(400):
        make_item()
    responses = findscu(scp, tmp_path, "PatientID", extra=["--cancel", "2"])
    assert 2 <= len(responses) < 400


def test_each_query_is_audited_with_the_calling_ae_and_without_patient_values(scp, tmp_path):
    make_item(patient_id="SECRET42", patient_name="DOE^JANE")
    findscu(scp, tmp_path, "PatientID=SECRET42", "PatientName")
    event = wait_for(AuditEvent.objects.filter(action="dimse.mwl_find"))
    assert event.actor == "FINDSCU"
    assert event.actor_type == "dicom_ae"
    assert event.client_address == "127.0.0.1"
    assert event.patient_id == "SECRET42"
    assert event.detail["matching_keys"] == ["PatientID"]
    assert event.detail["matches"] == 1
    assert "DOE" not in str(event.detail)
