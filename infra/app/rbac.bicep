// Role assignments for the app's managed identity, each the narrowest role and scope that works.
//
// What is narrowed and what cannot be:
// - Tables: one assignment per table (Azure RBAC accepts a table as a scope,
//   https://learn.microsoft.com/azure/storage/tables/assign-azure-role-data-access), and none on the
//   account or the table service, so no role of the identity reaches a table it was not given.
// - ReportAccess: append only. The table data actions are separate for insert (entities/add/action),
//   update or merge (entities/update/action), insert-or-replace/merge (entities/write, or add plus
//   update) and delete (entities/delete): Insert Entity is authorized by add/action alone, Update,
//   Merge and Delete Entity are not
//   (https://learn.microsoft.com/rest/api/storageservices/authorize-with-azure-active-directory#permissions-for-table-service-operations).
//   A custom role with only add/action lets the app insert report-request rows and nothing else: it
//   cannot read, overwrite (an insert with an existing key is refused with 409), update or delete a
//   row, nor delete the table. What RBAC cannot do: stop a principal with a control-plane role on the
//   storage account (Owner, Contributor, Storage Account Contributor) from deleting the table or the
//   account; Table storage has no immutability policy or soft delete. The table service's request
//   log (app/storage.bicep) keeps a second record of every insert in Log Analytics.
// - Blobs: not narrowed below the account. The Functions host stores its leases and keys in
//   containers it manages itself and lists the account's containers, which only an account-scoped
//   role allows; Microsoft documents Storage Blob Data Owner on the account for identity-based host
//   storage (https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity).
//   The raw evidence in audit-raw is protected by its immutability policy, which no data role can
//   override, not by RBAC.
// - Queues: the account holds no queue but the app's three, and the app must read, add and delete
//   messages in each; a per-queue scope would exclude only queues that do not exist.
// - Key Vault: the vault scope. Secret-level scopes exist, but the secrets are created after the
//   deployment (and only in the modes that use them), and a role assignment needs its scope to exist.
//
// Trade-off of the per-table scopes: the Functions host's own diagnostic-events table
// (AzureFunctionsDiagnosticEvents*, created monthly at the account) cannot be written; the host then
// logs a warning and turns that feature off (https://github.com/Azure/azure-functions-host/pull/10996).
// Execution logs and telemetry go to Application Insights either way.

param storageName string
@description('Every table of the app; each gets its own role assignment.')
param tableNames array
@description('The table the app may only insert rows into (ReportAccess).')
param appendOnlyTableName string
param appInsightsName string
param keyVaultName string
param principalId string
@description('The Flex deployment package container (the deployer may read it).')
param deploymentContainerName string
@description('The deploying user or service principal; empty: no role for it.')
param deployerPrincipalId string

// Built-in role definition IDs (the same in every tenant).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // host leases + deployment package + raw evidence
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // audit-content, its poison queue, subject-lookups
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // each table but the append-only one
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb' // telemetry with Entra ID auth
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6' // read the collector's secret, nothing else
var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // the deployer, on the deployment container only
var insertEntityAction = 'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deploymentContainerName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

resource appendOnlyTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: appendOnlyTableName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributors 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (tableName, i) in tableNames: if (tableName != appendOnlyTableName) {
    name: guid(tables[i].id, principalId, storageTableDataContributor)
    scope: tables[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Custom roles are tenant-wide objects whose names must be unique: the storage account's name (itself
// globally unique) keeps each deployment's role apart.
resource appendOnlyRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, storage.id, 'table-entity-insert-only')
  properties: {
    roleName: 'Table entity inserter (${storageName})'
    description: 'Insert new table entities; no read, update, replace, merge or delete. Assigned on the ReportAccess table of ${storageName}.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          insertEntityAction
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource appendOnlyInserter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appendOnlyTable.id, principalId, appendOnlyRole.name)
  scope: appendOnlyTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', appendOnlyRole.name)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The deployer's one role: read the deployment package container, and only that. Created after the
// identity's blob role, it lets the postprovision hook (infra/wait-for-roles.sh) see from the
// deployer's shell when this deployment's storage roles have taken effect. Azure Resource Manager
// caches role assignments, so a new one can take minutes to apply
// (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting, "Role assignment
// changes are not being detected"; https://learn.microsoft.com/azure/storage/blobs/assign-azure-role-data-access),
// and until the identity's has, the Flex platform's upload of the package with that identity gets 403.
resource deployerReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(deploymentContainer.id, deployerPrincipalId, storageBlobDataReader)
  scope: deploymentContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReader)
    principalId: deployerPrincipalId
  }
  dependsOn: [
    blobOwner
  ]
}
