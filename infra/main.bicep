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

@description('Entra tenant whose audit log is collected (defaults to this subscription\'s tenant).')
param tenantId string = tenant().tenantId

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

@description('Client ID of the app registration (secret or certificate mode only).')
param collectorClientId string = ''

@description('Key Vault secret holding the client secret or the PEM certificate (secret or certificate mode only).')
param collectorSecretName string = 'collector-credential'

@description('Optional: object ID of the user or service principal that creates the Key Vault secrets (az ad signed-in-user show --query id -o tsv); granted Key Vault Secrets Officer on the vault. Empty: assign it yourself (README).')
param deployerPrincipalId string = ''

@description('fetch_audit timer (NCRONTAB with seconds, UTC).')
param fetchSchedule string = '0 */5 * * * *'

// A time-based retention policy lasts 1 to 146,000 days
// (https://learn.microsoft.com/azure/storage/blobs/immutable-time-based-retention-policy-overview).
@description('Days each raw audit blob in audit-raw stays immutable (WORM).')
@minValue(1)
@maxValue(146000)
param immutabilityDays int = 365

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

@description('Resolve message ids to subjects through Microsoft Graph as records arrive: all mailboxes, a watchlist, or off.')
@allowed([
  'all'
  'watchlist'
  'off'
])
param resolveSubjects string = 'all'
@description('Comma-separated mailbox UPNs resolved when resolveSubjects is watchlist.')
param resolveWatchlist string = ''
@description('Let a report look up messages not resolved yet, within the two bounds below.')
param resolveOnDemand bool = true
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

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  workload: 'mailitemsaccessed-forensics'
}
var functionAppName = 'func-${resourceToken}'
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
]
// The record of every report request: the app may only add rows to it (app/rbac.bicep).
var reportAccessTableName = 'ReportAccess'

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
    softDeleteDays: softDeleteDays
    deploymentContainerName: 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
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
    deployerPrincipalId: deployerPrincipalId
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
    deploymentContainerName: 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
    appInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultName: vault.outputs.name
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    tenantId: tenantId
    publisherId: empty(publisherId) ? tenantId : publisherId
    m365Cloud: m365Cloud
    collectorAuthMode: collectorAuthMode
    collectorClientId: collectorClientId
    collectorSecretName: collectorSecretName
    fetchSchedule: fetchSchedule
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

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = 'https://${api.outputs.hostName}'
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output MANAGED_IDENTITY_NAME string = identity.outputs.name
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
