from django.urls import path

from callbacks import api

urlpatterns = [
    path("new-exam-callback", api.NewExamCallback.as_view(), name="new-exam-callback"),
    path("callback-events", api.CallbackEventCollection.as_view(), name="callback-events"),
    path("callback-events/<int:event_id>", api.CallbackEventDetail.as_view(), name="callback-event-detail"),
    path("callback-deliveries/replay", api.DeliveryReplay.as_view(), name="callback-deliveries-replay"),
]
