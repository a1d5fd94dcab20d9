{{/* The writes a car can make: VehicleNodes (and status) and Leases. */}}
{{- define "curbside.carWriteResources" -}}
resourceRules:
  - apiGroups: [curbside.dev]
    apiVersions: ["*"]
    resources: [vehiclenodes, vehiclenodes/status]
    operations: [CREATE, UPDATE, DELETE]
  - apiGroups: [coordination.k8s.io]
    apiVersions: ["*"]
    resources: [leases]
    operations: [CREATE, UPDATE, DELETE]
{{- end -}}

{{/* The rules every car write obeys once the caller is known to be car variables.car
     (config/rbac/admission.yaml rules 2-4). */}}
{{- define "curbside.carWriteValidations" -}}
{{- $ns := .Values.cars.leaseNamespace -}}
- expression: "!variables.lease || request.namespace == '{{ $ns }}'"
  messageExpression: "'cars write Leases only in namespace {{ $ns }}, not ' + request.namespace"
  reason: Forbidden
- expression: "!variables.lease || request.operation != 'DELETE'"
  message: cars may not delete Leases
  reason: Forbidden
- expression: >-
    !variables.lease || request.operation == 'DELETE'
    || object.spec.?holderIdentity.orValue(variables.car) == variables.car
  message: a car's Lease spec.holderIdentity must be the car's own name
  reason: Forbidden
- expression: >-
    !variables.lease || request.operation != 'CREATE'
    || (object.metadata.?finalizers.orValue([]).size() == 0
        && object.metadata.?ownerReferences.orValue([]).size() == 0)
  message: cars may not create Leases with metadata.finalizers or metadata.ownerReferences
  reason: Forbidden
- expression: variables.lease || variables.updating
  messageExpression: "'cars may not ' + request.operation.lowerAscii() + ' VehicleNodes, only update their status'"
  reason: Forbidden
- expression: variables.lease || request.?subResource.orValue('') == 'status'
  message: >-
    cars may write a VehicleNode only through its status subresource
    (not spec, not metadata)
  reason: Forbidden
- expression: variables.lease || !variables.updating || object.?spec == oldObject.?spec
  message: cars may not change spec (the owner's policy)
  reason: Forbidden
- expression: "!variables.updating || object.metadata.?labels == oldObject.metadata.?labels"
  message: cars may not change metadata.labels
  reason: Forbidden
- expression: "!variables.updating || object.metadata.?annotations == oldObject.metadata.?annotations"
  message: cars may not change metadata.annotations
  reason: Forbidden
- expression: "!variables.updating || object.metadata.?finalizers == oldObject.metadata.?finalizers"
  message: cars may not change metadata.finalizers
  reason: Forbidden
- expression: >-
    !variables.updating
    || object.metadata.?ownerReferences == oldObject.metadata.?ownerReferences
  message: cars may not change metadata.ownerReferences
  reason: Forbidden
- expression: >-
    variables.lease || !variables.updating
    || object.?status.?operator == oldObject.?status.?operator
  message: cars may not change status.operator (written by the operator only)
  reason: Forbidden
- expression: >-
    variables.lease || !variables.updating
    || object.?status.?conditions == oldObject.?status.?conditions
  message: cars may not change status.conditions (written by the operator only)
  reason: Forbidden
{{- end -}}
