import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';

// TRICKY: kubernetes-models 5.1.0 (pinned in package-lock.json) carries the Kubernetes 1.34
// OpenAPI schemas; its validators check types, required fields and enums, not unknown keys.
export const MODELS: Record<string, { validate(obj: unknown): void }> = {
  'v1/ConfigMap': { validate: (o) => new ConfigMap(o as ConfigMap).validate() },
  'v1/Namespace': { validate: (o) => new Namespace(o as Namespace).validate() },
  'v1/Secret': { validate: (o) => new Secret(o as Secret).validate() },
  'v1/Service': { validate: (o) => new Service(o as Service).validate() },
  'apps/v1/Deployment': { validate: (o) => new Deployment(o as Deployment).validate() },
  'apps/v1/StatefulSet': { validate: (o) => new StatefulSet(o as StatefulSet).validate() },
  'autoscaling/v2/HorizontalPodAutoscaler': {
    validate: (o) => new HorizontalPodAutoscaler(o as HorizontalPodAutoscaler).validate(),
  },
  'policy/v1/PodDisruptionBudget': {
    validate: (o) => new PodDisruptionBudget(o as PodDisruptionBudget).validate(),
  },
};
