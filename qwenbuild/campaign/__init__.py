"""Campaign files: the schema (`models`), loading and checking (`load`), the messages that
locate each problem (`messages`), and the resolved campaign the rest of qwenbuild reads
(`resolved`)."""

from .load import campaign_from_data, load_campaign
from .models import MAX_SEED, NAME_PATTERN, WINDOWS_RESERVED, CampaignFile, is_name
from .resolved import Asset, Campaign, Export, ParentRef, derive_seed

__all__ = ["MAX_SEED", "NAME_PATTERN", "WINDOWS_RESERVED", "Asset", "Campaign", "CampaignFile",
           "Export", "ParentRef", "campaign_from_data", "derive_seed", "is_name",
           "load_campaign"]
