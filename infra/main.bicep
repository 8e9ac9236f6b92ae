// MailItemsAccessed forensics: everything one tenant's deployment needs, in one resource group.
// `azd up` (azure.yaml) or `az deployment sub create -f infra/main.bicep`; see README, Deployment.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Azure region for every resource (Flex Consumption must be offered there).')
param location string

@description('Resource group to create; rg-<environmentName> when empty.')
param resourceGroupName string = ''

@description('Entra tenant whose audit log is collected; this subscription\'s tenant when empty. Another tenant needs collectorAuthMode secret or certificate.')
param tenantId string = ''

@description('PublisherIdentifier sent to the Management Activity API; the tenant ID when empty.')
param publisherId string = ''

@allowed([
  'commercial'
  'gcc'
  'gcchigh'
  'dod'
])
param m365Cloud string = 'commercial'

@description('How fetch_audit gets tokens: the app\'s managed identity (recommended), or an app registration with a secret or a PEM certificate stored in Key Vault.')
@allowed([
  'managedIdentity'
  'secret'
  'certificate'
])
param collectorAuthMode string = 'managedIdentity'

// A managed identity gets tokens only in its own tenant, the subscription's ("Managed identities
// don't currently support cross-directory scenarios",
// https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/managed-identities-faq#can-i-use-a-managed-identity-to-access-a-resource-in-a-different-directorytenant),
// so managedIdentity with another tenantId could never collect: ARM resolves this default before
// any deployment operation starts and refuses the deployment when it is false, with "The provided
// value 'False' for the template parameter 'managedIdentityCollectsItsOwnTenant' is not valid"
// (https://learn.microsoft.com/azure/azure-resource-manager/bicep/parameters). Bicep's fail()
// would say it in our own words, but checkov's Bicep parser cannot read fail(), and checkov must
// parse every template. (`tenant().tenantId` is parenthesized: the tree-sitter grammar misreads it
// on the right of an operator.)
@description('Never set: false (collectorAuthMode=managedIdentity with a tenantId other than this subscription\'s) refuses the deployment, as that identity can get no token for another tenant. Use secret or certificate there.')
@allowed([
  true
])
param managedIdentityCollectsItsOwnTenant bool = collectorAuthMode != 'managedIdentity' || empty(tenantId) || tenantId =~ (tenant().tenantId)

@description('Client ID of the app registration (secret or certificate mode only).')
param collectorClientId string = ''

@description('Key Vault secret holding the client secret or the PEM certificate (secret or certificate mode only).')
param collectorSecretName string = 'collector-credential'

// Timer schedules, NCRONTAB with seconds, UTC
// (https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions).
// Each run is billed at least one second of the instance memory (README, What it costs at idle), so
// the defaults (shared/settings CATALOGUE) run every 5 minutes, in an order that sends every alert
// within a minute of being raised: fetch_audit and enrich_trace send what they raise themselves;
// resolve_subjects (at :15) and watch_poison (at :30) raise theirs before deliver_alerts (at :50).
@description('fetch_audit timer (NCRONTAB with seconds, UTC).')
param fetchSchedule string = '0 */5 * * * *'
@description('deliver_alerts timer: alerts watch_poison and resolve_subjects raised, and retries.')
param deliverSchedule string = '50 */5 * * * *'
@description('watch_poison timer: raises processing.poison for messages parked on audit-content-poison.')
param poisonSchedule string = '30 */5 * * * *'
@description('resolve_subjects timer: resolves the queued message ids through Graph (when resolveSubjects is not off).')
param resolveSchedule string = '15 */5 * * * *'
@description('advance_backfills timer: advances backfill jobs from the Graph audit-log query API.')
param backfillSchedule string = '40 */5 * * * *'
@description('Days of history the first advance_backfills run asks the Graph audit-log query API for (0: none; needs AuditLogsQuery-Exchange.Read.All; worldwide and GCC only).')
@minValue(0)
@maxValue(3650)
param backfillInitialDays int = 0

// A time-based retention policy lasts 1 to 146,000 days
// (https://learn.microsoft.com/azure/storage/blobs/immutable-time-based-retention-policy-overview).
@description('Days each raw audit blob in audit-raw stays immutable (WORM).')
@minValue(1)
@maxValue(146000)
param immutabilityDays int = 365

// Turn off before locking the policy: a locked policy refuses the PUT a deployment sends, so every
// later provision would fail (https://learn.microsoft.com/rest/api/storagerp/blob-containers/lock-immutability-policy).
@description('Deploy the audit-raw immutability policy (immutabilityDays); false once it is locked (README, Deployment).')
param manageImmutabilityPolicy bool = true

// Blob and container soft delete keep deleted data 1 to 365 days
// (https://learn.microsoft.com/azure/storage/blobs/soft-delete-blob-overview).
@description('Days a deleted blob or container can be restored.')
@minValue(1)
@maxValue(365)
param softDeleteDays int = 30

// Application Insights accepts only these retention periods (`--retention-time`,
// https://learn.microsoft.com/cli/azure/monitor/app-insights/component#az-monitor-app-insights-component-update);
// each lies in the 30-730 days a PerGB2018 Log Analytics workspace accepts
// (https://learn.microsoft.com/azure/azure-monitor/logs/data-retention-configure).
@description('Days Log Analytics and Application Insights keep data.')
@allowed([
  30
  60
  90
  120
  180
  270
  365
  550
  730
])
param logRetentionDays int = 90

@allowed([
  '3.11'
])
@description('Python version of the app; must match what CI tests (requirements.txt pins azure-functions 1.x for 3.11).')
param pythonVersion string = '3.11'

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

// azd sets AZURE_PRINCIPAL_ID to whoever runs `azd provision` (main.parameters.json passes it).
@description('Object ID of the deploying user or service principal: given read access to the deployment package container only, so the postprovision hook (infra/wait-for-roles.sh) can tell when this deployment\'s storage roles have taken effect. Empty: none.')
param deployerPrincipalId string = ''

@description('Grant the deploying principal Key Vault Secrets Officer on the vault, so it can create the collector and webhook secrets (README, Key Vault secrets). Off: assign it yourself.')
param grantDeployerSecretsOfficer bool = false

@description('Turn on App Service authentication (Entra ID) in front of the report endpoint.')
param enableAuth bool = false

@description('Client ID of the Entra app registration that represents the report API (enableAuth only).')
param authClientId string = ''

@description('App role a caller\'s token must carry to get a report (enableAuth only).')
param reportRequiredRole string = 'MailAudit.Investigator'

@description('Deliver alerts to the webhook whose URL is the Key Vault secret alert-webhook-url.')
param alertWebhookEnabled bool = false
@description('Sign alert bodies with the Key Vault secret alert-webhook-secret (X-Signature-256).')
param alertWebhookSigned bool = false
@allowed([
  'json'
  'teams'
  'slack'
])
param alertWebhookFormat string = 'json'
param alertNearThrottleThreshold int = 900
param alertLagHours int = 6
param alertWebhookTimeoutSeconds int = 10

// Off by default, as is on-demand resolution: infra/grant-permissions.sh grants no Microsoft Graph
// permission unless asked (--all-graph), and without one every lookup gets 401/403. README,
// "Subjects through Microsoft Graph", turns both on together with the grant.
@description('Resolve message ids to subjects through Microsoft Graph as records arrive: all mailboxes, a watchlist, or off.')
@allowed([
  'all'
  'watchlist'
  'off'
])
param resolveSubjects string = 'off'
@description('Comma-separated mailbox UPNs resolved when resolveSubjects is watchlist.')
param resolveWatchlist string = ''
@description('Let a report look up messages not resolved yet, within the two bounds below.')
param resolveOnDemand bool = false
param resolveOnDemandMaxRequests int = 50
param resolveOnDemandSeconds int = 20
@description('Fall back to Graph message trace (worldwide service only; ignored in GCC High and DoD).')
param resolveMessageTrace bool = true

param collectOverlapMinutes int = 120
param collectWindowHours int = 23
param collectInitialLookbackHours int = 24
param collectMaxRequestsPerMinute int = 1500
param collectConcurrency int = 8
param collectTimeBudgetSeconds int = 1500
param collectRequestTimeoutSeconds int = 30
param collectMaxAttempts int = 8
param collectMaxBackoffSeconds int = 60
param reportDefaultDays int = 7
param reportMaxDays int = 400
param reportPageRows int = 10000
@description('Entries one sessions or exposure report may aggregate before it is refused with a 422 (about 100 MB at the default)')
@minValue(1000)
@maxValue(10000000)
param reportMaxAggregateEntries int = 200000
@description('Seconds one report request may read rows for; HTTP functions must answer within 230 seconds')
@minValue(5)
@maxValue(200)
param reportMaxSeconds int = 120

// Platform alerts (app/alerts.bicep, README "Platform alerts"): the rules are always deployed; the
// action group only when a receiver is given. The webhook gets Azure Monitor's common alert schema.
@secure()
@description('HTTPS URL Azure Monitor posts platform alerts to (common alert schema, unsigned); empty: no webhook.')
param platformAlertWebhookUrl string = ''
@description('E-mail address Azure Monitor notifies of platform alerts; empty: no e-mail.')
param platformAlertEmail string = ''
// Rules are evaluated every 5 minutes, the fetchSchedule default; the silence window spans several
// runs, as a run can take up to collectTimeBudgetSeconds (25 minutes) and then ends partial.
@description('Minutes without a successful collection run before the no-collection rule fires.')
@allowed([
  15
  30
  45
  60
  120
  180
  240
  360
  720
  1440
])
param platformAlertSilenceMinutes int = 30
@description('Minutes of telemetry the failure, poison and lag rules read each time they run.')
@allowed([
  5
  10
  15
  30
  45
  60
])
param platformAlertWindowMinutes int = 15
@description('Failed invocations of one function within the window above which the failure rule fires (0: any).')
@minValue(0)
param platformAlertFailureThreshold int = 0
@description('Messages on a poison queue above which the poison rule fires (0: any).')
@minValue(0)
param platformAlertPoisonThreshold int = 0
@description('Collection lag in minutes above which the lag rule fires; alertLagHours by default.')
@minValue(5)
param platformAlertLagMinutes int = alertLagHours * 60

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  workload: 'mailitemsaccessed-forensics'
}
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
// Must match shared/storage (RAW_CONTAINER, QUEUES, TABLES): tests/infra/test_templates.py checks
// that the deployment creates exactly those.
var rawContainerName = 'audit-raw'
var queueNames = [
  'audit-content'
  'audit-content-poison'
  'subject-lookups'
]
var tableNames = [
  'MailboxAccess'
  'ActorAccess'
  'CollectionState'
  'MessageIndex'
  'AlertOutbox'
  'ReportAccess'
  'RecordConflicts'
  'DetectionBaseline'
  'ContextIndex'
  'BackfillJobs'
]
// The record of every report request: the app may only add rows to it (app/rbac.bicep).
var reportAccessTableName = 'ReportAccess'
var collectedTenantId = empty(tenantId) ? tenant().tenantId : tenantId

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    retentionDays: logRetentionDays
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    immutabilityDays: immutabilityDays
    manageImmutabilityPolicy: manageImmutabilityPolicy
    softDeleteDays: softDeleteDays
    deploymentContainerName: deploymentContainerName
    rawContainerName: rawContainerName
    queueNames: queueNames
    tableNames: tableNames
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module vault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    tenantId: tenant().tenantId
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    secretsOfficerPrincipalId: grantDeployerSecretsOfficer ? deployerPrincipalId : ''
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageName: storage.outputs.name
    tableNames: tableNames
    appendOnlyTableName: reportAccessTableName
    appInsightsName: monitoring.outputs.appInsightsName
    keyVaultName: vault.outputs.name
    principalId: identity.outputs.principalId
    deploymentContainerName: deploymentContainerName
    deployerPrincipalId: deployerPrincipalId
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    planName: 'plan-${resourceToken}'
    appName: functionAppName
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultName: vault.outputs.name
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    authTenantId: tenant().tenantId
    tenantId: collectedTenantId
    publisherId: empty(publisherId) ? collectedTenantId : publisherId
    m365Cloud: m365Cloud
    collectorAuthMode: collectorAuthMode
    collectorClientId: collectorClientId
    collectorSecretName: collectorSecretName
    fetchSchedule: fetchSchedule
    deliverSchedule: deliverSchedule
    poisonSchedule: poisonSchedule
    resolveSchedule: resolveSchedule
    backfillSchedule: backfillSchedule
    backfillInitialDays: backfillInitialDays
    collectOverlapMinutes: collectOverlapMinutes
    collectWindowHours: collectWindowHours
    collectInitialLookbackHours: collectInitialLookbackHours
    collectMaxRequestsPerMinute: collectMaxRequestsPerMinute
    collectConcurrency: collectConcurrency
    collectTimeBudgetSeconds: collectTimeBudgetSeconds
    collectRequestTimeoutSeconds: collectRequestTimeoutSeconds
    collectMaxAttempts: collectMaxAttempts
    collectMaxBackoffSeconds: collectMaxBackoffSeconds
    reportDefaultDays: reportDefaultDays
    reportMaxDays: reportMaxDays
    reportPageRows: reportPageRows
    reportMaxAggregateEntries: reportMaxAggregateEntries
    reportMaxSeconds: reportMaxSeconds
    alertWebhookEnabled: alertWebhookEnabled
    alertWebhookSigned: alertWebhookSigned
    alertWebhookFormat: alertWebhookFormat
    alertNearThrottleThreshold: alertNearThrottleThreshold
    alertLagHours: alertLagHours
    alertWebhookTimeoutSeconds: alertWebhookTimeoutSeconds
    resolveSubjects: resolveSubjects
    resolveWatchlist: resolveWatchlist
    resolveOnDemand: resolveOnDemand
    resolveOnDemandMaxRequests: resolveOnDemandMaxRequests
    resolveOnDemandSeconds: resolveOnDemandSeconds
    resolveMessageTrace: resolveMessageTrace && (m365Cloud == 'commercial' || m365Cloud == 'gcc')
    enableAuth: enableAuth
    authClientId: authClientId
    reportRequiredRole: reportRequiredRole
  }
  // The identity must hold its storage roles before the host starts with identity-based storage.
  dependsOn: [
    rbac
  ]
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    appInsightsName: monitoring.outputs.appInsightsName
    webhookUrl: platformAlertWebhookUrl
    email: platformAlertEmail
    silenceMinutes: platformAlertSilenceMinutes
    windowMinutes: platformAlertWindowMinutes
    failureThreshold: platformAlertFailureThreshold
    poisonThreshold: platformAlertPoisonThreshold
    lagMinutes: platformAlertLagMinutes
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = 'https://${api.outputs.hostName}'
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_DEPLOYMENT_CONTAINER string = deploymentContainerName
output MANAGED_IDENTITY_NAME string = identity.outputs.name
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
