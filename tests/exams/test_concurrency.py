"""Concurrent uploads into one study, each request in its own thread and database connection."""

from __future__ import annotations

import io
import threading

import pydicom
import pytest
from django.db import connection

from exams.models import Instance, Series, Study
from tests.exams.conftest import make_dicom, new_patient, upload


def upload_concurrently(make_client, batches: list[list[bytes]]) -> list[int]:
    """POST each batch from its own thread, client and database connection, all released at once;
    the status codes in completion order."""
    clients = [make_client("exams:write") for _ in batches]
    start = threading.Barrier(len(batches))
    statuses = []

    def send(client, files):
        try:
            start.wait()
            statuses.append(upload(client, *files).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=pair) for pair in zip(clients, batches, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_into_one_study_keep_exact_counters(embedded_pacs, make_client):
    patient = new_patient()
    study = pydicom.uid.generate_uid()
    series = [pydicom.uid.generate_uid() for _ in range(2)]
    batches = [
        [
            make_dicom(patient_id=patient, study_uid=study, series_uid=series[(t + n) % 2], instance_number=n)
            for n in range(5)
        ]
        for t in range(4)
    ]
    statuses = upload_concurrently(make_client, batches)
    assert statuses == [200] * 4
    stored = Study.objects.get(study_uid=study)
    assert (stored.number_of_series, stored.number_of_instances) == (2, 20)
    assert Instance.objects.filter(series__study=stored).count() == 20
    assert sorted(Series.objects.filter(study=stored).values_list("number_of_instances", flat=True)) == [
        10,
        10,
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_each_spanning_the_same_known_studies_neither_fail_nor_deadlock(
    embedded_pacs, make_client
):
    """Each request stores into every one of several existing series (a modality sending several
    studies at once, from several connections): the requests' instance rows reference the same
    series rows, so the counter updates must not take locks that wait on those references."""
    patient = new_patient()
    studies = [(pydicom.uid.generate_uid(), pydicom.uid.generate_uid()) for _ in range(3)]
    writer = make_client("exams:write")
    for study, series in studies:
        first = make_dicom(patient_id=patient, study_uid=study, series_uid=series, instance_number=0)
        assert upload(writer, first).status_code == 200
    rounds, threads_count = 3, 4
    batches = [
        [
            make_dicom(patient_id=patient, study_uid=study, series_uid=series, instance_number=1 + t * 10 + r)
            for r in range(rounds)
            for study, series in studies
        ]
        for t in range(threads_count)
    ]
    statuses = upload_concurrently(make_client, batches)
    assert statuses == [200] * threads_count
    for study, series in studies:
        stored = Study.objects.get(study_uid=study)
        assert (stored.number_of_series, stored.number_of_instances) == (1, 1 + rounds * threads_count)
        assert Series.objects.get(series_uid=series).number_of_instances == 1 + rounds * threads_count


@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_creating_the_same_new_studies_in_other_orders_all_succeed(
    embedded_pacs, make_client
):
    """Every request brings the first instances of the same new patients and studies, each in
    its own order: the index rows are created in one global order, so no request deadlocks."""
    studies = [(new_patient(), pydicom.uid.generate_uid(), pydicom.uid.generate_uid()) for _ in range(4)]
    threads_count = 4
    batches = []
    for t in range(threads_count):
        rotated = studies[t:] + studies[:t]
        batches.append(
            [
                make_dicom(patient_id=patient, study_uid=study, series_uid=series, instance_number=1 + t)
                for patient, study, series in (rotated if t % 2 else rotated[::-1])
            ]
        )
    statuses = upload_concurrently(make_client, batches)
    assert statuses == [200] * threads_count
    for patient, study, _series in studies:
        stored = Study.objects.get(study_uid=study)
        assert stored.patient.patient_id == patient
        assert (stored.number_of_series, stored.number_of_instances) == (1, threads_count)


@pytest.mark.django_db(transaction=True)
def test_instance_ingest_outside_any_transaction_stores_counts_and_emits(embedded_pacs):
    """DIMSE and imports call instance_ingest in autocommit mode, not inside a request's batch."""
    from callbacks.models import CallbackEvent
    from exams.services import instance_ingest

    data = make_dicom(patient_id=new_patient())
    outcome = instance_ingest(fileobj=io.BytesIO(data), origin="dimse", actor="MODALITY1")
    assert outcome.status == "stored"
    stored = Study.objects.get(study_uid=outcome.study_uid)
    assert (stored.number_of_series, stored.number_of_instances) == (1, 1)
    assert CallbackEvent.objects.filter(study_instance_uid=outcome.study_uid).count() == 1
