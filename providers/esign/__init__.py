"""E-signature providers behind DocumentSigningWorkflow: `builtin` (the API's own signing page, the default) and
`docusign` (the docusign-esign SDK). Both speak base.py's contract; their events reach the workflow on the event
path (an event of subject `document` whose `workflow_signal` is DocumentSigningWorkflow's `provider_event`)."""
