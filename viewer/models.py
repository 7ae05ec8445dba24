from django.db import models


class RedeemedToken(models.Model):
    """A single-use viewer token that was exchanged for a viewer session (its id may not be used again).

    Rows are only needed until the token would have expired anyway; older rows are purged when new
    tokens are redeemed.
    """

    token_id = models.CharField(max_length=32, primary_key=True)
    study_uid = models.CharField(max_length=64)
    redeemed_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "redeemed single-use viewer token"

    def __str__(self) -> str:
        return f"{self.token_id[:8]}… redeemed {self.redeemed_at:%Y-%m-%d %H:%M:%S}"
