// Key Vault for the collector's app-registration secret or certificate (only read when that mode is
// used): RBAC authorization, soft delete and purge protection.

param name string
param location string
param tags object
param tenantId string
@description('Log Analytics workspace that receives the vault\'s audit log.')
param logAnalyticsId string

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

output name string = vault.name
