"""Typed custom search attributes. Workflows and the API share these keys.

Kept free of I/O so that workflow code may import it inside the sandbox.
"""

from temporalio.common import SearchAttributeKey

TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
LEAD_ID = SearchAttributeKey.for_keyword("LeadId")
OPPORTUNITY_ID = SearchAttributeKey.for_keyword("OpportunityId")
LEAD_STATUS = SearchAttributeKey.for_keyword("LeadStatus")
DEAL_STAGE = SearchAttributeKey.for_keyword("DealStage")
LEAD_SCORE = SearchAttributeKey.for_float("LeadScore")
DEFINITION_KEY = SearchAttributeKey.for_keyword("DefinitionKey")
INVESTOR_ID = SearchAttributeKey.for_keyword("InvestorId")
DOCUMENT_ID = SearchAttributeKey.for_keyword("DocumentId")  # DocumentSigningWorkflow's document

ALL = (TENANT_ID, LEAD_ID, OPPORTUNITY_ID, LEAD_STATUS, DEAL_STAGE, LEAD_SCORE, DEFINITION_KEY, INVESTOR_ID,
       DOCUMENT_ID)

_CLI_TYPES = {"KEYWORD": "Keyword", "DOUBLE": "Double", "INT": "Int", "BOOL": "Bool", "TEXT": "Text",
              "DATETIME": "Datetime"}


def dev_server_args() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    args: list[str] = []
    for key in ALL:
        args += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type.name]}"]
    return args
