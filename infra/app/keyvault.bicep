// Key Vault for the collector's app-registration secret or certificate (only read when that mode is
// used): RBAC authorization, soft delete and purge protection.

param name string
param location string
param tags object
param tenantId string
@description('Log Analytics workspace that receives the vault\'s audit log.')
param logAnalyticsId string
@description('Optional: object ID of whoever creates the vault\'s secrets, granted Key Vault Secrets Officer on this vault. Empty: no grant.')
param secretsOfficerPrincipalId string = ''

// Key Vault Secrets Officer: create, change and delete secrets (not keys or certificates), which
// `az keyvault secret set` needs on an RBAC vault; the app's identity only reads (Secrets User).
// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security#key-vault-secrets-officer
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Key Vault references from a Flex Consumption app without VNet integration resolve over the public endpoint, and App Service is not a trusted service for the vault firewall; access is RBAC-only (Key Vault Secrets User for the app identity).
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109: public network access is needed by the Key Vault reference resolver without a VNet.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Every access to the vault (secret reads by the Key Vault reference resolver, and any read, change
// or deletion by anyone else) and every management operation, with the caller, to Log Analytics.
// https://learn.microsoft.com/azure/key-vault/general/logging
resource vaultLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'vault-audit'
  scope: vault
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

// Nothing else can create the secrets: without them the app settings keep the literal Key Vault
// reference, and the feature that reads them is unavailable (README, "Key Vault secrets").
resource deployerSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(secretsOfficerPrincipalId)) {
  name: guid(vault.id, secretsOfficerPrincipalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: secretsOfficerPrincipalId
  }
}

output name string = vault.name
