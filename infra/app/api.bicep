// The function app: Flex Consumption (FC1), Python, one user-assigned identity for everything,
// identity-based storage, every setting the code reads, and optional Entra ID authentication.

param planName string
param appName string
param location string
param tags object
param identityId string
param identityClientId string
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerName string
param appInsightsConnectionString string
param keyVaultName string
param pythonVersion string
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Tenant of the report API\'s app registration (authClientId): the subscription\'s, whatever tenant is collected.')
param authTenantId string

// Collection (shared/settings/collection.py)
param tenantId string
param publisherId string
param m365Cloud string
@allowed([
  'managedIdentity'
  'secret'
  'certificate'
])
param collectorAuthMode string
param collectorClientId string
param collectorSecretName string
param fetchSchedule string
param deliverSchedule string
param poisonSchedule string
param resolveSchedule string
param backfillSchedule string
param backfillInitialDays int
param collectOverlapMinutes int
param collectWindowHours int
param collectInitialLookbackHours int
param collectMaxRequestsPerMinute int
param collectConcurrency int
param collectTimeBudgetSeconds int
param collectRequestTimeoutSeconds int
param collectMaxAttempts int
param collectMaxBackoffSeconds int

// Reports (shared/settings/reports.py)
param reportDefaultDays int
param reportMaxDays int
param reportPageRows int
param reportMaxAggregateEntries int
param reportMaxSeconds int

// Alerts (shared/settings/alerts.py): the webhook URL can hold a token and the signing key is a
// secret, so both are Key Vault references when enabled.
param alertWebhookEnabled bool
param alertWebhookSigned bool
param alertWebhookFormat string
param alertNearThrottleThreshold int
param alertLagHours int
param alertWebhookTimeoutSeconds int

// Subject resolution through Microsoft Graph (shared/settings/subjects.py)
param resolveSubjects string
param resolveWatchlist string
param resolveOnDemand bool
param resolveOnDemandMaxRequests int
param resolveOnDemandSeconds int
param resolveMessageTrace bool

// Entra ID authentication (App Service authentication v2) in front of the report endpoint
param enableAuth bool
param authClientId string
param reportRequiredRole string

var keyVaultReference = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${collectorSecretName})'
var webhookUrlReference = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=alert-webhook-url)'
var webhookSecretReference = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=alert-webhook-secret)'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption is offered only in some regions; this template must deploy in any Flex region. Collection resumes from its checkpoint after an outage, losing nothing within the API's 7-day window.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: incoming client certificates would break the function-key and Entra ID bearer-token callers this endpoint serves; callers are authenticated by Entra ID (authsettingsV2) and the function key.
  // checkov:skip=CKV_AZURE_222: public network access is how investigators reach the report endpoint; it is gated by a function key and, with enableAuth, Entra ID authentication plus an app role.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales instances on demand (maximumInstanceCount); the instance count of a dedicated plan does not apply.
  // checkov:skip=CKV_AZURE_78: Flex Consumption does not support siteConfig.ftpsState (ARM refuses it, error 51021; https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations); FTP publishing is off through the ftp basicPublishingCredentialsPolicies below.
  // checkov:skip=CKV_AZURE_213: no health-check path: the platform's health check pings an anonymous path, and every route here requires a key or token.
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // No ftpsState or alwaysOn: Flex Consumption lists both as invalid (tests/infra/test_templates.py).
      http20Enabled: true
      // Every setting in the catalogue (shared/settings/environment.py) is set here or documented as
      // optional in the README (tests/infra/test_settings_coverage.py checks the names between the
      // two markers).
      appSettings: [
        // app-settings:begin
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: storageBlobEndpoint
        }
        {
          name: 'AzureWebJobsStorage__queueServiceUri'
          value: storageQueueEndpoint
        }
        {
          name: 'AzureWebJobsStorage__tableServiceUri'
          value: storageTableEndpoint
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsightsConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        {
          name: 'FETCH_SCHEDULE'
          value: fetchSchedule
        }
        {
          name: 'DELIVER_SCHEDULE'
          value: deliverSchedule
        }
        {
          name: 'POISON_SCHEDULE'
          value: poisonSchedule
        }
        {
          name: 'RESOLVE_SCHEDULE'
          value: resolveSchedule
        }
        {
          name: 'BACKFILL_SCHEDULE'
          value: backfillSchedule
        }
        {
          name: 'BACKFILL_INITIAL_DAYS'
          value: string(backfillInitialDays)
        }
        {
          name: 'TENANT_ID'
          value: tenantId
        }
        {
          name: 'PUBLISHER_ID'
          value: publisherId
        }
        {
          name: 'M365_CLOUD'
          value: m365Cloud
        }
        {
          name: 'MANAGED_IDENTITY_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'CLIENT_ID'
          value: collectorAuthMode == 'managedIdentity' ? '' : collectorClientId
        }
        {
          name: 'CLIENT_SECRET'
          value: collectorAuthMode == 'secret' ? keyVaultReference : ''
        }
        {
          name: 'CLIENT_CERTIFICATE'
          value: collectorAuthMode == 'certificate' ? keyVaultReference : ''
        }
        {
          name: 'COLLECT_OVERLAP_MINUTES'
          value: string(collectOverlapMinutes)
        }
        {
          name: 'COLLECT_WINDOW_HOURS'
          value: string(collectWindowHours)
        }
        {
          name: 'COLLECT_INITIAL_LOOKBACK_HOURS'
          value: string(collectInitialLookbackHours)
        }
        {
          name: 'COLLECT_MAX_REQUESTS_PER_MINUTE'
          value: string(collectMaxRequestsPerMinute)
        }
        {
          name: 'COLLECT_CONCURRENCY'
          value: string(collectConcurrency)
        }
        {
          name: 'COLLECT_TIME_BUDGET_SECONDS'
          value: string(collectTimeBudgetSeconds)
        }
        {
          name: 'COLLECT_REQUEST_TIMEOUT_SECONDS'
          value: string(collectRequestTimeoutSeconds)
        }
        {
          name: 'COLLECT_MAX_ATTEMPTS'
          value: string(collectMaxAttempts)
        }
        {
          name: 'COLLECT_MAX_BACKOFF_SECONDS'
          value: string(collectMaxBackoffSeconds)
        }
        {
          name: 'REPORT_DEFAULT_DAYS'
          value: string(reportDefaultDays)
        }
        {
          name: 'REPORT_MAX_DAYS'
          value: string(reportMaxDays)
        }
        {
          name: 'REPORT_PAGE_ROWS'
          value: string(reportPageRows)
        }
        {
          name: 'REPORT_MAX_AGGREGATE_ENTRIES'
          value: string(reportMaxAggregateEntries)
        }
        {
          name: 'REPORT_MAX_SECONDS'
          value: string(reportMaxSeconds)
        }
        {
          name: 'REPORT_REQUIRED_ROLE'
          value: enableAuth ? reportRequiredRole : ''
        }
        {
          name: 'ALERT_WEBHOOK_URL'
          value: alertWebhookEnabled ? webhookUrlReference : ''
        }
        {
          name: 'ALERT_WEBHOOK_SECRET'
          value: alertWebhookEnabled && alertWebhookSigned ? webhookSecretReference : ''
        }
        {
          name: 'ALERT_WEBHOOK_FORMAT'
          value: alertWebhookFormat
        }
        {
          name: 'ALERT_NEAR_THROTTLE_THRESHOLD'
          value: string(alertNearThrottleThreshold)
        }
        {
          name: 'ALERT_LAG_HOURS'
          value: string(alertLagHours)
        }
        {
          name: 'ALERT_WEBHOOK_TIMEOUT_SECONDS'
          value: string(alertWebhookTimeoutSeconds)
        }
        {
          name: 'ALERT_RETENTION_DAYS'
          value: '30'
        }
        {
          name: 'DETECT_ENABLED'
          value: 'true'
        }
        {
          name: 'DETECT_BASELINE_DAYS'
          value: '30'
        }
        {
          name: 'DETECT_WARMUP_DAYS'
          value: '3'
        }
        {
          name: 'DETECT_WARMUP_RECORDS'
          value: '30'
        }
        {
          name: 'DETECT_MASS_MAILBOXES'
          value: '10'
        }
        {
          name: 'DETECT_MASS_WINDOW_MINUTES'
          value: '60'
        }
        {
          name: 'RESOLVE_SUBJECTS'
          value: resolveSubjects
        }
        {
          name: 'RESOLVE_WATCHLIST'
          value: resolveWatchlist
        }
        {
          name: 'RESOLVE_ON_DEMAND'
          value: string(resolveOnDemand)
        }
        {
          name: 'RESOLVE_ON_DEMAND_MAX_REQUESTS'
          value: string(resolveOnDemandMaxRequests)
        }
        {
          name: 'RESOLVE_ON_DEMAND_SECONDS'
          value: string(resolveOnDemandSeconds)
        }
        {
          name: 'RESOLVE_MESSAGE_TRACE'
          value: string(resolveMessageTrace)
        }
        // app-settings:end
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// No publishing with user names and passwords: deployment is by Entra ID (azd, az, func).
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service authentication v2 with Entra ID: callers need a token for the API app registration
// (authClientId); the code then requires the app role REPORT_REQUIRED_ROLE in the token. Always
// declared, so turning enableAuth off really turns authentication off.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov applies its Microsoft.Web/sites checks to this sites/config child too; the settings they
  // look for (logging, TLS, network, auth) live on the site resource above, which passes them.
  // checkov:skip=CKV_AZURE_13: false positive: this resource IS the App Service authentication setting.
  // checkov:skip=CKV_AZURE_63: false positive on a sites/config child; HTTP logging is a site setting (Flex sends logs to Application Insights).
  // checkov:skip=CKV_AZURE_65: false positive on a sites/config child; detailed error pages are a site setting.
  // checkov:skip=CKV_AZURE_66: false positive on a sites/config child; failed request tracing is a site setting.
  // checkov:skip=CKV_AZURE_80: false positive: no .NET Framework here (Python on Linux).
  // checkov:skip=CKV_AZURE_88: false positive on a sites/config child; Azure Files mounts are a site setting and Flex uses none.
  // checkov:skip=CKV_AZURE_222: false positive on a sites/config child; the site's public network access is discussed on the site.
  parent: app
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: enableAuth
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
    }
    httpSettings: {
      requireHttps: true
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: enableAuth
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${authClientId}'
            authClientId
          ]
        }
      }
    }
  }
}

output name string = app.name
output hostName string = app.properties.defaultHostName
