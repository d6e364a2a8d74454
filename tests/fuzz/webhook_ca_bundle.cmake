# The MutatingWebhookConfiguration JSON tandem-ca reads back from the API server.
tandem_fuzz_target(fuzz_webhook_config SOURCES fuzz_webhook_config.cc
  LIBS tandem_ca_injector)
