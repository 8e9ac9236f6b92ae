// Storage account for the app: raw evidence (immutable), the work queue, the tables, and the Flex
// deployment package container. Identity-only: shared keys are disabled.

param name string
param location string
param tags object
@description('Days each raw audit blob stays immutable (WORM) after it is written.')
@minValue(1)
param immutabilityDays int
@description('Send the raw container\'s immutability policy; false once it is locked, which only `extend` can change.')
param manageImmutabilityPolicy bool
@description('Days a deleted blob or container can still be restored.')
@minValue(1)
@maxValue(365)
param softDeleteDays int
param deploymentContainerName string
param rawContainerName string
param queueNames array
param tableNames array
@description('Log Analytics workspace that receives the storage request logs.')
param logAnalyticsId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the Flex Consumption app reaches storage over the public endpoint unless it is VNet-integrated; access is identity-only (no shared keys, no SAS, no anonymous reads), so the network rule would add no protection the RBAC gate does not.
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35: no VNet in this deployment, so the public endpoint must stay reachable for the app; every request needs an Entra token with a data role.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_GRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    dnsEndpointType: 'Standard'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource rawContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: rawContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Time-based retention (WORM): a raw blob can be written once and read, never changed or deleted
// until it is older than immutabilityDays. Created unlocked so the period can still be corrected;
// lock it once agreed (README, Deployment) and it can then only be extended
// (https://learn.microsoft.com/azure/storage/blobs/immutable-time-based-retention-policy-overview).
// A locked policy refuses this PUT ("the only action allowed on a Locked policy is
// ExtendImmutabilityPolicy": https://learn.microsoft.com/rest/api/storagerp/blob-containers/lock-immutability-policy),
// so the operator turns manageImmutabilityPolicy off before locking. Left out of the template, the
// policy is left as it is: the deployment is incremental and the container's own PUT carries no policy.
resource rawImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (manageImmutabilityPolicy) {
  parent: rawContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: immutabilityDays
    allowProtectedAppendWrites: false
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

// Request logs (who read, wrote or deleted what, with which identity) go to Log Analytics: every read,
// write and delete of the raw evidence and of the tables (reports read MailboxAccess/ActorAccess, and
// every ReportAccess insert is logged here too, a copy outside the table itself), and every write and
// delete on the queues. Queue reads are left out: the trigger's polling would dominate the volume and
// say nothing. Categories: https://learn.microsoft.com/azure/storage/tables/monitor-table-storage-reference
resource blobLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'storage-requests'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource queueLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'storage-requests'
  scope: queueService
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource tableLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'storage-requests'
  scope: tableService
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
