"""Documents for e-signature: the templates and their context (templates.py, context.py), the PDF (pdf.py), the
tenant's signing certificate (signing_keys.py), PAdES signatures and their verification (pades.py) and the
certificate of completion (certificate.py). Pure of the API and of Temporal: DocumentSigningWorkflow's
activities, the built-in and DocuSign providers and `dealflow documents verify` stand on them."""
