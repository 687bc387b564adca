"""Feature toggles as OpenFeature flagd documents: rendering a FlagSet, changing one flag
(enable, disable, default variant, fractional percentage), the progressive percentage policy, env
values for apps that only read env, and the Kubernetes ConfigMap that carries the document."""
